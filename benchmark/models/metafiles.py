"""mmseg's own model metadata: the ``metafile.yaml`` files shipped inside the mmseg wheel.

Each official zoo entry (one with a download ``url``) must agree with the metafile record of its
config: the weights URL, the published single-scale mIoU, the dataset and the crop size (the
``HxW`` suffix of the config name). :func:`zoo_drift` lists every disagreement; a test and
``benchmark models --check`` fail on any. :func:`entry_from_metafile` writes a new entry's fields.

The files are read as YAML: mmseg is located, not imported.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Mapping

import yaml

from benchmark.errors import ConfigError
from benchmark.models.zoo import ModelEntry

# metafile "Dataset" -> our dataset registry name (the datasets the benchmark has loaders for)
DATASET_NAMES = MappingProxyType({"Pascal VOC 2012 + Aug": "voc2012", "Cityscapes": "cityscapes",
                                  "ADE20K": "ade20k"})
_CROP = re.compile(r"-(\d+)x(\d+)$")


@dataclass(frozen=True)
class OfficialRecord:
    """One model of an mmseg metafile.

    Args:
        config: config path inside mmseg's configs folder, e.g. ``pspnet/pspnet_r50-d8_...py``.
        weights: checkpoint download URL.
        dataset: metafile dataset name (e.g. ``"Cityscapes"``).
        miou: published single-scale mIoU, as a fraction.
        crop_size: (height, width) training crop from the config name, None if it has none.
    """

    config: str
    weights: str
    dataset: str
    miou: float | None
    crop_size: tuple[int, int] | None


def mmseg_configs_dir() -> Path:
    """``mmseg/.mim/configs`` of the installed wheel (found without importing mmseg)."""
    spec = importlib.util.find_spec("mmseg")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("mmsegmentation is not installed: its metafiles cannot be read")
    return Path(list(spec.submodule_search_locations)[0]) / ".mim" / "configs"


@cache
def official_records() -> Mapping[str, OfficialRecord]:
    """Every metafile model with weights, keyed by config path (``<algorithm>/<file>.py``)."""
    records: dict[str, OfficialRecord] = {}
    for path in sorted(mmseg_configs_dir().glob("*/metafile.yaml")):
        for model in (yaml.safe_load(path.read_text()) or {}).get("Models") or []:
            results = model.get("Results") or {}
            if not model.get("Weights") or not model.get("Config"):
                continue
            miou = (results.get("Metrics") or {}).get("mIoU")
            crop = _CROP.search(model["Name"])
            config = model["Config"].removeprefix("configs/")
            records[config] = OfficialRecord(
                config=config, weights=model["Weights"], dataset=str(results.get("Dataset")),
                miou=None if miou is None else round(float(miou) / 100, 6),
                crop_size=(int(crop.group(1)), int(crop.group(2))) if crop else None)
    return MappingProxyType(records)


def record_for(entry: ModelEntry) -> OfficialRecord:
    """The metafile record of ``entry``'s config; ConfigError if mmseg ships none."""
    record = official_records().get(entry.config)
    if record is None:
        raise ConfigError(f"model {entry.name!r}: config {entry.config} has no record in mmseg's metafiles")
    return record


def drift(entry: ModelEntry) -> list[str]:
    """How the official entry ``entry`` disagrees with its metafile record (empty: it agrees)."""
    try:
        record = record_for(entry)
    except ConfigError as err:
        return [str(err)]
    problems = []
    expected = {"url": record.weights, "published_miou": record.miou,
                "dataset": DATASET_NAMES.get(record.dataset, record.dataset),
                "crop_size": record.crop_size}
    for key, value in expected.items():
        if getattr(entry, key) != value:
            problems.append(f"model {entry.name!r}: {key} is {getattr(entry, key)!r}, mmseg's metafile says {value!r}")
    return problems


def zoo_drift(entries: Iterable[ModelEntry]) -> list[str]:
    """:func:`drift` over every official entry (an mmseg config with a download url)."""
    return [problem for entry in entries if entry.url and entry.config for problem in drift(entry)]


def entry_from_metafile(config: str) -> dict:
    """The YAML fields of a zoo entry for an mmseg config, from its metafile record."""
    record = official_records().get(config)
    if record is None:
        raise ConfigError(f"config {config} has no record in mmseg's metafiles")
    return {"config": record.config, "dataset": DATASET_NAMES.get(record.dataset, record.dataset),
            "checkpoint": f"checkpoints/{record.weights.rsplit('/', 1)[-1]}", "url": record.weights,
            "sha256": None, "published_miou": record.miou,
            "crop_size": list(record.crop_size) if record.crop_size else None}
