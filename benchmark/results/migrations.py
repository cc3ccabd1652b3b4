"""Upgrades of old result and entry files (raw dict of version v -> raw dict of version v + 1).

Version 1 -> 2 (results and leaderboard entries): one source and one seed became lists (``sources``,
``seeds``); metric and image records name their source and seed (null for clean); metrics gained
bootstrap intervals, and results gained seed summaries and attack comparisons; ``numerics`` (threads,
device, precision settings) is unknown for old files (null), and so are the achieved perturbations
(no records). All of it follows from
the version-1 image records, so the upgrade recomputes it (default interval settings) -- after
checking that the file's version-1 metrics agree with those records, so an altered old file is still
refused rather than silently repaired.
"""

from __future__ import annotations

from typing import Any

from benchmark.errors import ResultError
from benchmark.results import codec
from benchmark.results.audit import same_values
from benchmark.results.intervals import derive
from benchmark.results.schema import CLEAN, DatasetInfo, ImageRecord, IntervalInfo, ModelInfo, SourceInfo

def _v2_records(raw: dict[str, Any], attacks: list[str], file: str) -> tuple[dict[str, Any], SourceInfo]:
    """Shared part: records with source and seed, re-derived metrics; returns (fields, source)."""
    source = codec.decode(SourceInfo, raw["source"], file, "source")
    seed = raw["seed"]
    for image in raw["images"]:
        attacked = image.get("condition") != CLEAN
        image["source"], image["seed"] = (source.id, seed) if attacked else (None, None)
    images = codec.decode(tuple[ImageRecord, ...], raw["images"], file, "images")
    dataset = codec.decode(DatasetInfo, raw["dataset"], file, "dataset")
    models = codec.decode(tuple[ModelInfo, ...], raw["models"], file, "models")
    targets = [m.name for m in models if "target" in m.roles]
    intervals = IntervalInfo.default()
    metrics, summaries, comparisons = derive(images, targets=targets, sources=[source.id], attacks=attacks,
                                             seeds=[seed], num_classes=len(dataset.class_names), intervals=intervals)
    fresh = {(m.target, m.condition): m for m in metrics}
    for old in raw["metrics"]:
        new = fresh.get((old.get("target"), old.get("condition")))
        if new is None or not all(same_values(old.get(name), getattr(new, name))
                                  for name in ("miou", "pixel_accuracy", "success_rate", "per_class_iou")):
            raise ResultError(f"{file}: metrics of {old.get('target')}/{old.get('condition')} do not follow from "
                              "its image records: the file was altered")
    return {"seeds": [seed], "intervals": codec.encode(intervals), "metrics": codec.encode(metrics),
            "summaries": codec.encode(summaries), "comparisons": codec.encode(comparisons),
            "images": raw["images"]}, source


def result_v1_to_v2(raw: dict[str, Any], file: str = "<results>") -> dict[str, Any]:
    """A version-1 ``results.json`` as version 2."""
    attacks = [a["name"] for a in raw["attacks"]]
    fields, source = _v2_records(raw, attacks, file)
    return {"schema_version": 2, "dataset": raw["dataset"], "models": raw["models"], "sources": [codec.encode(source)],
            "attacks": raw["attacks"], "seeds": fields["seeds"], "adv_format": raw["adv_format"],
            "intervals": fields["intervals"], "provenance": None, "versions": raw["versions"], "numerics": None,
            "timings": raw["timings"], "metrics": fields["metrics"], "summaries": fields["summaries"],
            "comparisons": fields["comparisons"], "perturbation_summaries": [], "images": fields["images"],
            "perturbations": []}


def entry_v1_to_v2(raw: dict[str, Any], file: str = "<entry>") -> dict[str, Any]:
    """A version-1 leaderboard entry as version 2."""
    fields, _ = _v2_records(raw, [raw["attack"]["name"]], file)
    return {"schema_version": 2, "dataset": raw["dataset"], "track": raw["track"], "source": raw["source"],
            "attack": raw["attack"], "models": raw["models"], "seeds": fields["seeds"], "adv_format": raw["adv_format"],
            "intervals": fields["intervals"], "versions": raw["versions"], "numerics": None, "metrics": fields["metrics"],
            "summaries": fields["summaries"], "perturbation_summaries": [], "metadata": None,
            "images": fields["images"], "perturbations": []}
