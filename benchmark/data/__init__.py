"""Datasets: VOC 2012, Cityscapes and ADE20K loaders, their descriptions, and a scene generator.

A sample is ``{"image": float32 (3, H, W) RGB in [0, 1], "label": int64 (H, W), "name": str}``.
Public surface: :func:`build_dataset`, the registry :data:`DATASETS` of :class:`DatasetInfo`, the
loader classes, and :mod:`benchmark.data.synthetic` (imported on demand; it is not needed to load).
"""

from benchmark.data.ade20k import ADE20KSegmentation
from benchmark.data.base import SegmentationDataset
from benchmark.data.build import LOADERS, build_dataset
from benchmark.data.catalog import DATASETS, DatasetInfo
from benchmark.data.cityscapes import CityscapesSegmentation
from benchmark.data.voc import VOCSegmentation

__all__ = [
    "ADE20KSegmentation",
    "CityscapesSegmentation",
    "DATASETS",
    "DatasetInfo",
    "LOADERS",
    "SegmentationDataset",
    "VOCSegmentation",
    "build_dataset",
]
