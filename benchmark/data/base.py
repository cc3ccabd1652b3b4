"""The dataset every loader returns: an indexed list of (name, image file, label file) records.

Layout modules (``voc``, ``cityscapes``, ``ade20k``) only find the files and check that they pair up;
decoding, label conversion, checks and the evaluation resize policy live here, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from benchmark.data.catalog import DatasetInfo
from benchmark.data.files import (
    check_image_range,
    check_label_values,
    check_same_size,
    image_size,
    mmseg_rescale_size,
    read_image,
    read_label,
    resize_image,
)
from benchmark.errors import ConfigError, DataError

RESIZE_POLICIES = ("none", "mmseg")
_INVALID = -1  # marks stored values that a conversion table does not know


@dataclass(frozen=True)
class Sample:
    """One image and its label file; ``name`` is unique within the split and stable across runs."""

    name: str
    image: Path
    label: Path


def lookup_table(table: Sequence[tuple[int, int]]) -> np.ndarray:
    """A 256-entry stored-value -> label array; values missing from ``table`` map to -1 (invalid)."""
    lut = np.full(256, _INVALID, dtype=np.int64)
    for stored, label in table:
        lut[stored] = label
    return lut


def reduce_zero_label_table(ignore_index: int) -> np.ndarray:
    """mmseg's ``reduce_zero_label``: 0 -> ignore, v -> v - 1, and a stored ignore stays ignore."""
    lut = np.arange(256, dtype=np.int64) - 1
    lut[0] = ignore_index
    lut[255] = ignore_index  # 255 - 1 = 254 is turned back to ignore, as mmseg does
    return lut


def paired(name: str, image: Path, label: Path) -> Sample:
    """The record for ``name``, or a DataError naming both files when one of them is missing."""
    has_image, has_label = image.is_file(), label.is_file()
    if has_image and has_label:
        return Sample(name, image, label)
    if has_image:
        raise DataError(f"image {image} has no label: expected {label}")
    if has_label:
        raise DataError(f"label {label} has no image: expected {image}")
    raise DataError(f"sample {name!r}: neither image {image} nor label {label} exists")


class SegmentationDataset(Dataset):
    """Map-style dataset of ``{"image", "label", "name"}`` samples (architecture.md 3.3).

    Args:
        info: the dataset description (classes, ignore_index, test_scale, ...).
        samples: the records, in a fixed order; must not be empty.
        resize: evaluation input policy. ``"none"`` (default) keeps the native size. ``"mmseg"``
            applies mmseg's test-time ``Resize(info.test_scale, keep_ratio=True)`` to the image only.
        limit: keep only the first ``limit`` samples (None keeps all).
        label_lut: optional 256-entry stored-value -> label table (e.g. Cityscapes labelIds); an entry
            of -1 marks a stored value the table does not know. Without one, ``info.reduce_zero_label``
            selects mmseg's reduce-zero-label table; otherwise stored values are the labels.

    The label is never resized: metrics are computed at the original label resolution. With
    ``resize="mmseg"`` the image and the label differ in size, and the caller resizes the model's
    logits (which are at input resolution) back to the label size with bilinear interpolation, as
    mmseg does before its argmax. Only labels would ever be resized with nearest neighbour.

    Shapes:
        image float32 (3, H', W') RGB in [0, 1]; label int64 (H, W); name str.
    """

    def __init__(
        self,
        info: DatasetInfo,
        samples: Sequence[Sample],
        resize: str = "none",
        limit: int | None = None,
        label_lut: np.ndarray | None = None,
    ) -> None:
        if resize not in RESIZE_POLICIES:
            raise ConfigError(f"resize {resize!r} is not one of {RESIZE_POLICIES}")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ConfigError(f"limit must be a positive integer or None, got {limit!r}")
        if not samples:
            raise DataError(f"dataset {info.name!r}: the split is empty (no image/label pairs found)")
        self.info = info
        self.resize = resize
        self.samples = tuple(samples[:limit] if limit is not None else samples)
        if label_lut is None and info.reduce_zero_label:
            label_lut = reduce_zero_label_table(info.ignore_index)
        self.label_lut = label_lut

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, object]:
        sample = self.samples[index]
        image = read_image(sample.image)
        stored = read_label(sample.label)
        check_same_size(image, stored, sample.image, sample.label)
        label = self._convert(stored, sample.label)
        if self.resize == "mmseg" and self.info.test_scale is not None:
            height, width = label.shape
            image = resize_image(image, *mmseg_rescale_size(width, height, self.info.test_scale))
        return {
            "image": check_image_range(image, sample.name),
            "label": torch.from_numpy(label),
            "name": sample.name,
        }

    def input_size(self, index: int) -> tuple[int, int]:
        """(H, W) of sample ``index`` as the models receive it (after the resize policy), read from the
        image file's header without decoding it: the size buckets and ``benchmark plan`` use it."""
        width, height = image_size(self.samples[index].image)
        if self.resize == "mmseg" and self.info.test_scale is not None:
            width, height = mmseg_rescale_size(width, height, self.info.test_scale)
        return height, width

    def _convert(self, stored: np.ndarray, path: Path) -> np.ndarray:
        if self.label_lut is None:
            label = stored
        else:
            if stored.min() < 0 or stored.max() >= self.label_lut.size:
                raise DataError(f"label file {path} contains value {int(stored.max())} outside [0, 255]")
            label = self.label_lut[stored]
            unknown = label == _INVALID
            if unknown.any():
                raise DataError(
                    f"label file {path} contains stored value {int(stored[unknown].min())}, "
                    f"which dataset {self.info.name!r} does not define"
                )
        check_label_values(label, self.info.num_classes, self.info.ignore_index, path)
        return label

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.info.name!r}, {len(self)} samples, resize={self.resize!r})"
