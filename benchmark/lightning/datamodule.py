"""LightningDataModule over the dataset loaders: a sharding sampler that never pads or drops, job-array
shards (``data.shard K/N``) and size buckets for datasets of mixed image sizes (``data.bucket_by_size``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import lightning.pytorch as pl
import torch
from torch.utils.data import BatchSampler, DataLoader, Sampler

from benchmark.data import DATASETS, build_dataset
from benchmark.errors import ConfigError, DataError


T = TypeVar("T")


def stride_share(items: Sequence[T], part: int, parts: int) -> list[T]:
    """Positions ``part, part + parts, part + 2·parts, ...`` of ``items``: over ``part = 0 .. parts - 1``
    every item exactly once, none padded or dropped. The one rule for DDP ranks and for job-array shards
    (a shard's images are split over its ranks by the same rule)."""
    if not 0 <= part < parts:
        raise ValueError(f"part {part} is not in [0, {parts})")
    return list(items[part::parts])


class ShardSampler(Sampler[int]):
    """Positions ``rank, rank + world, rank + 2·world, ...`` of ``indices`` (default ``range(length)``):
    every index exactly once over all ranks.

    Lightning's default distributed sampler pads the last shard with repeated samples; this one gives
    uneven shards instead, so no image is counted twice and none is dropped (pitfalls §10). A resumed run
    passes the indices of the images its journal does not hold yet.
    """

    def __init__(self, length: int, rank: int = 0, world_size: int = 1, indices=None):
        self.indices = list(range(length) if indices is None else indices)
        self.rank, self.world_size = rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(stride_share(self.indices, self.rank, self.world_size))

    def __len__(self) -> int:
        return len(stride_share(self.indices, self.rank, self.world_size))


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"K/N"`` -> (K, N) with 0 <= K < N; None stays None; ConfigError naming the value otherwise."""
    if text is None:
        return None
    parts = str(text).split("/")
    if len(parts) == 2 and all(p.strip().isdigit() for p in parts):
        index, count = int(parts[0]), int(parts[1])
        if 0 <= index < count:
            return index, count
    raise ConfigError(f"data.shard must be K/N with 0 <= K < N (e.g. 0/8 for $SLURM_ARRAY_TASK_ID/8), got {text!r}")


def size_buckets(indices: Sequence[int], sizes: Sequence[tuple[int, int]], batch_size: int) -> list[list[int]]:
    """Batches of ``indices`` whose images have identical ``sizes`` (one size per index): the sizes in
    the order they first appear, each size's indices in their order, cut into batches of
    ``batch_size`` (the last batch of a size may be smaller). A deterministic function of the image list,
    so every rank, shard and resumed run sees the same batches for the same images."""
    groups: dict[tuple[int, int], list[int]] = {}
    for index, size in zip(indices, sizes):
        groups.setdefault(tuple(size), []).append(index)
    return [group[start:start + batch_size] for group in groups.values() for start in range(0, len(group), batch_size)]


class SizeBucketSampler(BatchSampler):
    """Batch sampler of :func:`size_buckets` over this rank's images (``stride_share`` of ``indices``)."""

    def __init__(self, indices: Sequence[int], sizes: Sequence[tuple[int, int]], batch_size: int,
                 rank: int = 0, world_size: int = 1):
        mine = stride_share(list(zip(indices, sizes)), rank, world_size)
        self.batches = size_buckets([i for i, _ in mine], [s for _, s in mine], batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        return iter([list(batch) for batch in self.batches])

    def __len__(self) -> int:
        return len(self.batches)


def collate(samples: list[dict]) -> dict:
    """Stack samples into a batch; images of different sizes need batch_size 1 or size buckets (named in
    the error)."""
    shapes = {tuple(sample["image"].shape) for sample in samples}
    if len(shapes) > 1:
        names = ", ".join(sample["name"] for sample in samples)
        raise DataError(f"images of different sizes {sorted(shapes)} in one batch ({names}); use batch_size 1 "
                        "or data.bucket_by_size true")
    return {
        "image": torch.stack([sample["image"] for sample in samples]),
        "label": torch.stack([sample["label"] for sample in samples]),
        "name": [sample["name"] for sample in samples],
    }


class SegmentationDataModule(pl.LightningDataModule):
    """The validation data of one experiment.

    Args:
        dataset: registry name (``voc2012``, ``cityscapes``, ``ade20k``, ``synthetic-voc``, ...).
        root: dataset folder in that dataset's standard layout.
        split: split to evaluate (default ``val``).
        limit: evaluate only the first ``limit`` images (None: the whole split).
        batch_size: images per batch (slide-mode and real-data runs usually want 1).
        num_workers: DataLoader worker processes.
        resize: ``mmseg`` (default): the dataset's mmseg test pipeline resizes the image (VOC and
            ADE20K: keep-ratio into 2048x512, Cityscapes: into 2048x1024), exactly as mmcv does it;
            labels keep their size and metrics are computed there. ``none``: native size. Generated
            datasets have no test scale: both policies feed them at native size.
        generate_if_missing: for generated datasets (``synthetic-*``), write them at ``root`` first if
            the folder is absent (deterministic, seconds).
        generate_val: how many val images to generate (None: the generator's default; then no train
            images are written). Image k is the same whatever the count, so a larger split extends a
            smaller one.
        preflight: before the Trainer starts, decode and check every image and label of the split
            (:func:`benchmark.data.preflight.scan`); false skips it for data known to be good.
        shard: ``"K/N"``: evaluate only shard K of N of the images (after ``limit``), chosen by the rule
            that assigns images to DDP ranks (:func:`stride_share`): over K = 0 .. N-1 every image once.
            One job of a job array (``--data.shard $SLURM_ARRAY_TASK_ID/8``); its result is marked as a
            shard, and ``benchmark summarize`` joins the N shard results into the result of the whole job.
        bucket_by_size: batch only images of identical (resized) size, so that ``batch_size`` above 1 works
            for datasets of mixed image sizes (VOC, ADE20K); batches follow :func:`size_buckets` over each
            rank's images. Results equal those of batch size 1 up to float rounding of batched kernels.
    """

    def __init__(self, dataset: str = "synthetic-voc", root: str = "data/generated/synthetic-voc",
                 split: str = "val", limit: int | None = None, batch_size: int = 1, num_workers: int = 0,
                 resize: str = "mmseg", generate_if_missing: bool = True, generate_val: int | None = None,
                 preflight: bool = True, shard: str | None = None, bucket_by_size: bool = False):
        super().__init__()
        if dataset not in DATASETS:
            raise ConfigError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
        if batch_size < 1 or (limit is not None and limit < 1):
            raise ConfigError(f"batch_size and limit must be >= 1, got {batch_size} and {limit}")
        self.dataset_name, self.root, self.split, self.limit = dataset, Path(root), split, limit
        self.batch_size, self.num_workers, self.resize = batch_size, num_workers, resize
        if generate_val is not None and generate_val < 1:
            raise ConfigError(f"data.generate_val must be >= 1 or null, got {generate_val}")
        self.generate_if_missing, self.generate_val, self.preflight = generate_if_missing, generate_val, preflight
        self.shard = parse_shard(shard)
        if not isinstance(bucket_by_size, bool):
            raise ConfigError(f"data.bucket_by_size must be true or false, got {bucket_by_size!r}")
        self.bucket_by_size = bucket_by_size
        self.job_size = 0  # images of the whole job (all shards), known once the dataset is built
        self.skip: frozenset[str] = frozenset()  # images a resumed run's journal already holds
        self.info = DATASETS[dataset]
        self._dataset = None

    def check_files(self, scan: bool | None = None) -> None:
        """List and pair the split's files now (writing a generated set first), and with ``scan``
        (default: ``preflight``) decode and check every sample, so that data problems fail before
        the Trainer starts."""
        from benchmark.data.preflight import scan as scan_dataset

        dataset = self.dataset
        if self.preflight if scan is None else scan:
            scan_dataset(dataset, 1 if self.bucket_by_size else self.batch_size)

    @property
    def _generated_later(self) -> bool:
        return self.generate_if_missing and self.dataset_name.startswith("synthetic-") and not self.root.exists()

    @property
    def num_classes(self) -> int:
        return len(self.info.classes)

    @property
    def ignore_index(self) -> int:
        return self.info.ignore_index

    @property
    def split_size(self) -> int:
        """Images in the whole split (a run with ``limit`` evaluates fewer: a partial result)."""
        if self.limit is None:
            _ = self.dataset
            return self.job_size
        return len(build_dataset(self.dataset_name, self.root, split=self.split, resize=self.resize))

    @property
    def input_policy(self) -> str:
        """How images reach the models, recorded in results (pitfalls §13): the resize that happens."""
        resize = self.resize if self.info.test_scale is not None else "none"
        return f"resize={resize}; labels at original resolution; model inference per zoo entry"

    def prepare_data(self) -> None:
        if self._generated_later:
            from benchmark.data.synthetic import generate

            counts = {} if self.generate_val is None else {"n_train": 0, "n_val": self.generate_val}
            generate(self.root, layout=self.info.layout, **counts)

    @property
    def dataset(self):
        if self._dataset is None:
            self.prepare_data()
            dataset = build_dataset(self.dataset_name, self.root, split=self.split, limit=self.limit,
                                    resize=self.resize)
            self.job_size = len(dataset)
            if self.shard is not None:
                index, count = self.shard
                dataset.samples = tuple(stride_share(dataset.samples, index, count))
                if not dataset.samples:
                    raise DataError(f"data.shard {index}/{count} holds no image: the job has only {self.job_size} "
                                    f"images (use at most {self.job_size} shards)")
            self._dataset = dataset
        return self._dataset

    def setup(self, stage: str | None = None) -> None:
        _ = self.dataset

    def val_dataloader(self) -> DataLoader:
        rank = self.trainer.global_rank if self.trainer is not None else 0
        world = self.trainer.world_size if self.trainer is not None else 1
        remaining = [i for i, sample in enumerate(self.dataset.samples) if sample.name not in self.skip]
        if self.bucket_by_size:
            sizes = [self.dataset.input_size(i) for i in remaining]
            return DataLoader(self.dataset, num_workers=self.num_workers, collate_fn=collate,
                              batch_sampler=SizeBucketSampler(remaining, sizes, self.batch_size, rank, world))
        return DataLoader(self.dataset, batch_size=self.batch_size, num_workers=self.num_workers,
                          sampler=ShardSampler(len(self.dataset), rank, world, indices=remaining), collate_fn=collate)

    @property
    def shard_text(self) -> str | None:
        """``"K/N"`` of a shard run, else None."""
        return None if self.shard is None else f"{self.shard[0]}/{self.shard[1]}"
