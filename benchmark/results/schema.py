"""``results.json`` schema: frozen dataclasses with ``schema_version`` (architecture §3.5).

Conventions: every key is always present; numbers are JSON numbers; scores are fractions in [0, 1]
(never percentages); undefined values are ``null`` (per-class IoU of a class absent from both prediction
and ground truth; success rate of the clean condition, or of an attack when no valid pixel was correct
on clean images). Objects check their own consistency in ``__post_init__`` and raise ``ResultError``.

Construction (results writer)::

    attack = AttackInfo.from_settings("transegpgd+mi", attack_fn.settings)   # hash + track derived
    record = MetricRecord.from_scores("segformer_b0", "transegpgd+mi", scores, success_rate=0.41)
    result = RunResult(schema_version=SCHEMA_VERSION, dataset=DatasetInfo(...), models=(...),
                       source=SourceInfo(models=("pspnet_r50",), ensemble=None), attacks=(attack,),
                       seed=0, adv_format="float", versions=Versions.current(mmseg=...),
                       timings=Timings(wall_s=12.0, images_per_s=0.8), metrics=(record, ...))
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from benchmark.errors import ResultError
from benchmark.results.tracks import TrackInfo, settings_hash, track_from_settings

SCHEMA_VERSION = 1
CLEAN = "clean"  # the condition name of unattacked images
ROLES = ("source", "target")
INFERENCE_MODES = ("whole", "slide")
ADV_FORMATS = ("float", "png_uint8")
ENSEMBLE_MODES = ("logits", "loss")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ResultError(message)


def _fraction(value: float | None, name: str) -> None:
    _check(value is None or (math.isfinite(value) and 0.0 <= value <= 1.0),
           f"{name} must be a fraction in [0, 1] (not a percentage), got {value!r}")


@dataclass(frozen=True)
class DatasetInfo:
    """The evaluated data. ``num_images`` were evaluated out of ``split_size`` in the full split;
    ``image_limit`` is the run's cap on images (None: whole split). ``input_policy`` describes resizing
    and cropping (pitfalls §13); ``class_names`` fixes the order of per-class IoU. ``batch_size`` is
    the images per batch of the run: results do not depend on it beyond last-bit floating-point
    differences at near-tied pixels, and ``benchmark verify`` reuses it to repeat a run exactly."""

    name: str
    split: str
    num_images: int
    split_size: int
    image_limit: int | None
    input_policy: str
    class_names: tuple[str, ...]
    ignore_index: int
    batch_size: int

    def __post_init__(self) -> None:
        _check(self.batch_size >= 1, f"dataset.batch_size must be >= 1, got {self.batch_size}")
        _check(0 <= self.num_images <= self.split_size,
               f"dataset.num_images {self.num_images} must be in [0, split_size={self.split_size}]")
        _check(self.image_limit is None or self.image_limit >= 1,
               f"dataset.image_limit must be null or >= 1, got {self.image_limit}")
        _check(len(self.class_names) >= 1, "dataset.class_names is empty")

    @property
    def is_partial(self) -> bool:
        """True when fewer images than the full split were evaluated (not comparable)."""
        return self.num_images != self.split_size


@dataclass(frozen=True)
class ModelInfo:
    """One model: zoo ``name``, ``roles`` (subset of ("source", "target"), in that order), mmseg
    ``config`` path or name, ``checkpoint_sha256`` (64 lowercase hex; None without a checkpoint) and
    ``inference_mode`` ("whole" or "slide")."""

    name: str
    roles: tuple[str, ...]
    config: str
    checkpoint_sha256: str | None
    inference_mode: str

    def __post_init__(self) -> None:
        _check(bool(self.roles) and self.roles == tuple(r for r in ROLES if r in self.roles)
               and len(set(self.roles)) == len(self.roles),
               f"model '{self.name}': roles must be a non-empty subset of {list(ROLES)} in that order, "
               f"got {list(self.roles)}")
        _check(self.inference_mode in INFERENCE_MODES,
               f"model '{self.name}': inference_mode must be one of {list(INFERENCE_MODES)}, "
               f"got '{self.inference_mode}'")
        _check(self.checkpoint_sha256 is None or bool(SHA256_RE.match(self.checkpoint_sha256)),
               f"model '{self.name}': checkpoint_sha256 must be 64 lowercase hex characters")


@dataclass(frozen=True)
class SourceInfo:
    """The model(s) the attacks differentiate: one name, or several with ``ensemble`` "logits"/"loss"."""

    models: tuple[str, ...]
    ensemble: str | None

    def __post_init__(self) -> None:
        _check(len(self.models) >= 1, "source.models is empty")
        _check((len(self.models) == 1) == (self.ensemble is None) and
               (self.ensemble is None or self.ensemble in ENSEMBLE_MODES),
               f"source.ensemble must be null for one model and one of {list(ENSEMBLE_MODES)} for "
               f"several, got {self.ensemble!r} with {len(self.models)} model(s)")

    @property
    def id(self) -> str:
        """Stable label, also a directory name: ``"pspnet"`` or ``"ens-logits-pspnet+deeplab"``."""
        if self.ensemble is None:
            return self.models[0]
        return f"ens-{self.ensemble}-" + "+".join(self.models)


@dataclass(frozen=True)
class AttackInfo:
    """One attack: canonical ``name`` (e.g. "transegpgd+mi"), flat resolved ``settings`` (JSON
    scalars), ``settings_hash`` (see :func:`settings_hash`) and the ``track`` derived from the settings
    (None when they do not define eps, steps and alpha). Build with :meth:`from_settings`."""

    name: str
    settings: dict[str, Any]
    settings_hash: str
    track: TrackInfo | None

    def __post_init__(self) -> None:
        _check(bool(self.name) and self.name != CLEAN, f"attack name {self.name!r} is not allowed")
        object.__setattr__(self, "settings", dict(sorted(self.settings.items())))  # own, ordered copy
        _check(self.settings_hash == settings_hash(self.settings),
               f"attack '{self.name}': settings_hash {self.settings_hash!r} does not match its settings")
        _check(self.track == track_from_settings(self.settings),
               f"attack '{self.name}': track does not match its settings (eps, steps, alpha)")

    @classmethod
    def from_settings(cls, name: str, settings: Mapping[str, Any]) -> AttackInfo:
        """Derive hash and track from the flat settings."""
        flat = dict(settings)
        return cls(name=name, settings=flat, settings_hash=settings_hash(flat),
                   track=track_from_settings(flat))


@dataclass(frozen=True)
class Versions:
    """Package versions (strings). ``current()`` fills python, torch, torchmetrics, lightning and the
    benchmark from the running interpreter; pass ``mmseg`` (imported only by the model adapter)."""

    python: str
    torch: str
    torchmetrics: str
    lightning: str
    mmseg: str
    benchmark: str

    @classmethod
    def current(cls, mmseg: str) -> Versions:
        import platform
        from importlib.metadata import version

        import benchmark

        return cls(python=platform.python_version(), torch=version("torch"),
                   torchmetrics=version("torchmetrics"), lightning=version("lightning"),
                   mmseg=mmseg, benchmark=benchmark.__version__)


@dataclass(frozen=True)
class Timings:
    """Wall-clock seconds of the evaluation and throughput in images per second."""

    wall_s: float
    images_per_s: float

    def __post_init__(self) -> None:
        _check(self.wall_s >= 0 and self.images_per_s >= 0, "timings must be non-negative")


@dataclass(frozen=True)
class MetricRecord:
    """Scores of one ``target`` under one ``condition`` ("clean" or an attack's canonical name).

    ``success_rate`` is None for "clean" and for an attack when no valid pixel was correct on clean."""

    target: str
    condition: str
    miou: float
    per_class_iou: tuple[float | None, ...]
    pixel_accuracy: float
    success_rate: float | None
    num_images: int

    def __post_init__(self) -> None:
        where = f"metrics[{self.target}/{self.condition}]"
        for name in ("miou", "pixel_accuracy", "success_rate"):
            _fraction(getattr(self, name), f"{where}.{name}")
        for k, iou in enumerate(self.per_class_iou):
            _fraction(iou, f"{where}.per_class_iou[{k}]")
        _check(self.condition != CLEAN or self.success_rate is None,
               f"{where}.success_rate must be null for the clean condition")

    @classmethod
    def from_scores(cls, target: str, condition: str, scores: Any,
                    success_rate: float | None = None) -> MetricRecord:
        """From :class:`benchmark.metrics.Scores`; a NaN success rate becomes None."""
        if success_rate is not None and math.isnan(success_rate):
            success_rate = None
        _check(not math.isnan(scores.miou), f"metrics[{target}/{condition}]: no valid pixel was scored")
        return cls(target=target, condition=condition, miou=scores.miou,
                   per_class_iou=tuple(scores.per_class_iou), pixel_accuracy=scores.pixel_accuracy,
                   success_rate=success_rate, num_images=scores.num_images)


@dataclass(frozen=True)
class ImageRecord:
    """Pixel counts of one ``image`` for one ``target`` under one ``condition``: the audit trail.

    Over valid pixels (label != ignore_index): for each class in ``classes`` (ascending; classes
    with all-zero counts are left out) the pixels predicted correctly (``intersection``), predicted as
    the class (``predicted``) and labelled as the class (``labelled``). ``fooled`` counts the valid
    pixels correct on the clean image and wrong under this attack (None for "clean"). The counts add
    up over images, so the dataset-level metrics follow from them exactly (:mod:`benchmark.results.audit`),
    and ``benchmark verify`` recomputes them for the images it re-runs."""

    image: str
    target: str
    condition: str
    classes: tuple[int, ...]
    intersection: tuple[int, ...]
    predicted: tuple[int, ...]
    labelled: tuple[int, ...]
    fooled: int | None

    def __post_init__(self) -> None:
        where = f"images[{self.image}/{self.target}/{self.condition}]"
        n = len(self.classes)
        _check(len(self.intersection) == len(self.predicted) == len(self.labelled) == n,
               f"{where}: classes, intersection, predicted and labelled must have equal lengths")
        _check(list(self.classes) == sorted(set(self.classes)), f"{where}: classes must be ascending and distinct")
        _check(all(0 <= i <= min(p, g) for i, p, g in zip(self.intersection, self.predicted, self.labelled)),
               f"{where}: counts must satisfy 0 <= intersection <= predicted, labelled")
        _check((self.condition == CLEAN) == (self.fooled is None),
               f"{where}: fooled must be null exactly for the clean condition")
        _check(self.fooled is None or 0 <= self.fooled <= sum(self.labelled), f"{where}: fooled out of range")


@dataclass(frozen=True)
class RunResult:
    """One evaluation run (``results.json``): every target x condition ("clean" + each attack)."""

    schema_version: int
    dataset: DatasetInfo
    models: tuple[ModelInfo, ...]
    source: SourceInfo
    attacks: tuple[AttackInfo, ...]
    seed: int
    adv_format: str
    versions: Versions
    timings: Timings
    metrics: tuple[MetricRecord, ...]
    images: tuple[ImageRecord, ...]

    def __post_init__(self) -> None:
        _check(self.schema_version == SCHEMA_VERSION,
               f"schema_version must be {SCHEMA_VERSION} after migration, got {self.schema_version}")
        names = [m.name for m in self.models]
        _check(len(set(names)) == len(names), f"duplicate model names in {names}")
        sources = [m.name for m in self.models if "source" in m.roles]
        _check(sorted(sources) == sorted(self.source.models),
               f"source.models {list(self.source.models)} must be the models with role 'source' {sources}")
        attacks = [a.name for a in self.attacks]
        _check(len(set(attacks)) == len(attacks), f"duplicate attack names in {attacks}")
        _check(self.adv_format in ADV_FORMATS, f"adv_format must be one of {list(ADV_FORMATS)}")
        index = {(r.target, r.condition): r for r in self.metrics}
        _check(len(index) == len(self.metrics), "duplicate (target, condition) in metrics")
        expected = {(t, c) for t in self.targets for c in (CLEAN, *attacks)}
        _check(set(index) == expected, "metrics must hold exactly every target x condition; "
               f"missing {sorted(expected - set(index))}, extra {sorted(set(index) - expected)}")
        for r in self.metrics:
            _check(len(r.per_class_iou) == len(self.dataset.class_names),
                   f"metrics[{r.target}/{r.condition}].per_class_iou has {len(r.per_class_iou)} "
                   f"values for {len(self.dataset.class_names)} classes")
            _check(r.num_images == self.dataset.num_images,
                   f"metrics[{r.target}/{r.condition}].num_images {r.num_images} != "
                   f"dataset.num_images {self.dataset.num_images}")
        check_image_records(self.images, index, self.dataset)

    @property
    def targets(self) -> tuple[str, ...]:
        """Target model names, in the order of ``models``."""
        return tuple(m.name for m in self.models if "target" in m.roles)

    def metric(self, target: str, condition: str) -> MetricRecord:
        """The record of ``target`` under ``condition`` (KeyError if absent)."""
        for r in self.metrics:
            if r.target == target and r.condition == condition:
                return r
        raise KeyError((target, condition))

    def is_white_box(self, target: str) -> bool:
        """True when ``target`` is (one of) the source model(s)."""
        return target in self.source.models


def check_image_records(images: tuple[ImageRecord, ...], metrics: Mapping[tuple[str, str], MetricRecord],
                        dataset: DatasetInfo) -> None:
    """Every (target, condition) of ``metrics`` has one record per evaluated image, and no other."""
    seen: dict[tuple[str, str], set[str]] = {key: set() for key in metrics}
    for record in images:
        key = (record.target, record.condition)
        _check(key in seen, f"images: record for unknown target/condition {key}")
        _check(record.image not in seen[key], f"images: duplicate record {record.image}/{key}")
        _check(all(0 <= k < len(dataset.class_names) for k in record.classes),
               f"images[{record.image}]: class index out of range")
        seen[key].add(record.image)
    names = next(iter(seen.values()), set())
    for key, found in seen.items():
        _check(len(found) == dataset.num_images and found == names,
               f"images: {key} has {len(found)} image records for {dataset.num_images} images")
