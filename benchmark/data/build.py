"""``build_dataset``: the one entry point from a registry name to a loaded dataset."""

from __future__ import annotations

import inspect
from os import PathLike
from types import MappingProxyType
from typing import Any, Mapping

from benchmark.data.ade20k import ADE20KSegmentation
from benchmark.data.base import SegmentationDataset
from benchmark.data.catalog import DATASETS
from benchmark.data.cityscapes import CityscapesSegmentation
from benchmark.data.voc import VOCSegmentation
from benchmark.errors import ConfigError

# DatasetInfo.layout -> loader class. The generated sets reuse the VOC and Cityscapes loaders.
LOADERS: Mapping[str, type[SegmentationDataset]] = MappingProxyType(
    {"voc": VOCSegmentation, "cityscapes": CityscapesSegmentation, "ade20k": ADE20KSegmentation}
)


def build_dataset(
    name: str,
    root: str | PathLike[str],
    split: str = "val",
    limit: int | None = None,
    resize: str = "none",
    **options: Any,
) -> SegmentationDataset:
    """Build the loader of registry entry ``name`` reading ``root``.

    Args:
        name: a key of ``DATASETS`` ("voc2012", "cityscapes", "ade20k", "synthetic-voc",
            "synthetic-cityscapes").
        root: dataset folder in the layout of ``DATASETS[name].layout`` (see the loader docstrings).
        split: split name (default "val").
        limit: keep only the first ``limit`` samples (None keeps all).
        resize: "none" (native size, default) or "mmseg" (mmseg's test-time Resize on the image).
        options: loader-specific keywords, e.g. ``label_dir="SegmentationClassAug"`` for VOC.

    Raises:
        ConfigError: unknown name, resize policy or option. DataError: missing or unpaired files.

    Example:
        >>> dataset = build_dataset("synthetic-voc", "data/synthetic-voc", limit=8)
        >>> sample = dataset[0]  # {"image": (3, 120, 160) float, "label": (120, 160) int64, "name": str}
    """
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    info = DATASETS[name]
    loader = LOADERS[info.layout]
    allowed = set(inspect.signature(loader).parameters) - {"root", "split", "info", "resize", "limit"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(
            f"dataset {name!r}: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed)) or 'none'}"
        )
    return loader(root, split=split, info=info, resize=resize, limit=limit, **options)
