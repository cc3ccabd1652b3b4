"""PASCAL VOC 2012 segmentation loader (also reads the generated ``synthetic-voc`` set)."""

from __future__ import annotations

from os import PathLike
from pathlib import Path

from benchmark.data.base import SegmentationDataset, paired
from benchmark.data.catalog import DATASETS, DatasetInfo
from benchmark.data.files import require_dir
from benchmark.errors import DataError


def read_split_file(path: Path) -> list[str]:
    """Sample ids of a VOC ``ImageSets/Segmentation/<split>.txt``, one per line, in file order."""
    if not path.is_file():
        raise DataError(f"split file not found: {path}")
    names = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise DataError(f"split file {path} lists no images (empty split)")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError(f"split file {path} lists {name!r} twice")
        seen.add(name)
    return names


class VOCSegmentation(SegmentationDataset):
    """PASCAL VOC 2012 segmentation: 21 classes including background, 255 ignored (object borders).

    Layout under ``root`` (the ``VOCdevkit/VOC2012`` folder)::

        JPEGImages/<id>.jpg
        SegmentationClass/<id>.png        palette PNGs; the palette index is the class
        SegmentationClassAug/<id>.png     optional (SBD augmented labels), select with label_dir
        ImageSets/Segmentation/<split>.txt

    Evaluation policy (``resize="mmseg"``): mmseg's VOC test pipeline, ``Resize(scale=(2048, 512),
    keep_ratio=True)`` on the image, labels at their original resolution; the caller resizes logits
    back to the label size. The default ``resize="none"`` keeps the native size (VOC images are at
    most 500 pixels, so the mmseg policy upsamples them to a 512 short side where possible).

    Args:
        root: the VOC2012 folder.
        split: split file name without ``.txt`` (default ``"val"``).
        info: dataset description (default ``DATASETS["voc2012"]``).
        resize: ``"none"`` or ``"mmseg"``.
        limit: keep the first ``limit`` ids of the split file.
        label_dir: ``"SegmentationClass"`` (default) or ``"SegmentationClassAug"``.

    Missing folders, split files and unpaired files raise DataError at construction; bad label
    values, size mismatches and corrupt files raise DataError naming the file when the sample is read.
    """

    def __init__(
        self,
        root: str | PathLike[str],
        split: str = "val",
        info: DatasetInfo = DATASETS["voc2012"],
        resize: str = "none",
        limit: int | None = None,
        label_dir: str = "SegmentationClass",
    ) -> None:
        root = require_dir(Path(root), "VOC root (the VOC2012 folder)")
        names = read_split_file(root / "ImageSets" / "Segmentation" / f"{split}.txt")
        image_dir = require_dir(root / "JPEGImages", "VOC image folder")
        label_root = require_dir(root / label_dir, "VOC label folder")
        samples = [paired(name, image_dir / f"{name}.jpg", label_root / f"{name}.png") for name in names]
        super().__init__(info, samples, resize=resize, limit=limit)
