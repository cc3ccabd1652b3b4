"""ADE20K (SceneParsing, ADEChallengeData2016) loader."""

from __future__ import annotations

from os import PathLike
from pathlib import Path

from benchmark.data.base import SegmentationDataset, paired
from benchmark.data.catalog import DATASETS, DatasetInfo
from benchmark.data.files import require_dir
from benchmark.errors import DataError

# Benchmark split names -> the folder names of ADEChallengeData2016; other names are used as is.
SPLIT_DIRS = {"val": "validation", "train": "training"}


class ADE20KSegmentation(SegmentationDataset):
    """ADE20K with 150 classes and mmseg's reduce-zero-label: stored 0 -> 255, stored v -> v - 1.

    Layout under ``root`` (the ``ADEChallengeData2016`` folder)::

        images/validation/ADE_val_<n>.jpg
        annotations/validation/ADE_val_<n>.png     single-channel, 0 = "other", 1..150 = classes

    Evaluation policy (``resize="mmseg"``): mmseg's ADE20K test pipeline, ``Resize(scale=(2048, 512),
    keep_ratio=True)`` on the image, labels at their original resolution; the caller resizes logits
    back to the label size.

    Args:
        root: the ADEChallengeData2016 folder.
        split: ``"val"`` (default, folder ``validation``) or ``"train"`` (folder ``training``).
        info: dataset description (default ``DATASETS["ade20k"]``).
        resize: ``"none"`` or ``"mmseg"``.
        limit: keep the first ``limit`` samples in sorted order.
    """

    def __init__(
        self,
        root: str | PathLike[str],
        split: str = "val",
        info: DatasetInfo = DATASETS["ade20k"],
        resize: str = "none",
        limit: int | None = None,
    ) -> None:
        root = require_dir(Path(root), "ADE20K root (the ADEChallengeData2016 folder)")
        folder = SPLIT_DIRS.get(split, split)
        image_dir = require_dir(root / "images" / folder, "ADE20K image split folder")
        label_dir = require_dir(root / "annotations" / folder, "ADE20K annotation split folder")
        images = sorted(image_dir.glob("*.jpg"))
        if not images:
            raise DataError(f"no *.jpg images under {image_dir} (empty split)")
        samples = [paired(image.stem, image, label_dir / f"{image.stem}.png") for image in images]
        known = {image.stem for image in images}
        for label in sorted(label_dir.glob("*.png")):
            if label.stem not in known:
                raise DataError(f"label {label} has no image: expected {image_dir / (label.stem + '.jpg')}")
        super().__init__(info, samples, resize=resize, limit=limit)
