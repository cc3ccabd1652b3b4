"""Cityscapes fine-annotation loader (also reads the generated ``synthetic-cityscapes`` set)."""

from __future__ import annotations

from os import PathLike
from pathlib import Path

from benchmark.data.base import SegmentationDataset, lookup_table, paired
from benchmark.data.catalog import DATASETS, DatasetInfo
from benchmark.data.files import require_dir
from benchmark.errors import DataError

IMAGE_SUFFIX = "_leftImg8bit.png"
TRAIN_ID_SUFFIX = "_gtFine_labelTrainIds.png"
ID_SUFFIX = "_gtFine_labelIds.png"


class CityscapesSegmentation(SegmentationDataset):
    """Cityscapes with the 19 evaluation classes (train ids), 255 ignored.

    Layout under ``root``::

        leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
        gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelTrainIds.png

    If the split has no ``*_gtFine_labelTrainIds.png`` at all, ``*_gtFine_labelIds.png`` are read
    instead and converted with ``info.id_to_train_id`` (the official labelId -> trainId table);
    a stored id outside that table is a DataError. Sample names are the file stems without suffix
    (``frankfurt_000000_000294``), sorted.

    Evaluation policy (``resize="mmseg"``): mmseg's Cityscapes test pipeline, ``Resize(scale=(2048,
    1024), keep_ratio=True)``, which leaves the native 2048x1024 images unchanged; each model then infers as its config's
    ``test_cfg`` says (whole image for mmseg's CNN configs, windows for SegFormer; the model adapter's
    concern). Labels stay at their original resolution.

    Args:
        root: folder holding ``leftImg8bit/`` and ``gtFine/``.
        split: ``"val"`` (default), ``"train"`` or ``"test"``.
        info: dataset description (default ``DATASETS["cityscapes"]``).
        resize: ``"none"`` or ``"mmseg"``.
        limit: keep the first ``limit`` samples in sorted order.
    """

    def __init__(
        self,
        root: str | PathLike[str],
        split: str = "val",
        info: DatasetInfo = DATASETS["cityscapes"],
        resize: str = "none",
        limit: int | None = None,
    ) -> None:
        root = require_dir(Path(root), "Cityscapes root")
        image_dir = require_dir(root / "leftImg8bit" / split, "Cityscapes image split folder")
        label_dir = require_dir(root / "gtFine" / split, "Cityscapes label split folder")
        suffix, lut = TRAIN_ID_SUFFIX, None
        labels = sorted(label_dir.glob(f"*/*{TRAIN_ID_SUFFIX}"))
        if not labels:
            labels = sorted(label_dir.glob(f"*/*{ID_SUFFIX}"))
            if labels and not info.id_to_train_id:
                raise DataError(
                    f"{label_dir} has only *{ID_SUFFIX} files and dataset {info.name!r} has no "
                    f"labelId -> trainId table; provide *{TRAIN_ID_SUFFIX} files"
                )
            suffix, lut = ID_SUFFIX, lookup_table(info.id_to_train_id)
        images = sorted(image_dir.glob(f"*/*{IMAGE_SUFFIX}"))
        if not images and not labels:
            raise DataError(f"no *{IMAGE_SUFFIX} images under {image_dir} (empty split)")
        samples = []
        for image in images:
            name = image.name[: -len(IMAGE_SUFFIX)]
            samples.append(paired(name, image, label_dir / image.parent.name / f"{name}{suffix}"))
        known = {(s.image.parent.name, s.name) for s in samples}
        for label in labels:
            name = label.name[: -len(suffix)]
            if (label.parent.name, name) not in known:
                raise DataError(
                    f"label {label} has no image: expected {image_dir / label.parent.name / (name + IMAGE_SUFFIX)}"
                )
        super().__init__(info, samples, resize=resize, limit=limit, label_lut=lut)
