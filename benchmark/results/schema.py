"""``results.json`` schema: frozen dataclasses with ``schema_version`` (architecture §3.5).

``RunResult`` is defined here; its parts in :mod:`benchmark.results.info` (dataset, models, sources,
attacks, versions, numerics, provenance, origin of users' code) and :mod:`benchmark.results.records`
(metrics, summaries, comparisons, image and perturbation records). Every name is importable from here.

Conventions: every key is always present; numbers are JSON numbers; scores are fractions in [0, 1]
(never percentages); undefined values are ``null`` (per-class IoU of a class absent from both prediction
and ground truth; success rate of the clean condition, or of an attack when no valid pixel was correct
on clean images). Objects check their own consistency in ``__post_init__`` and raise ``ResultError``.

A run evaluates every target on the clean images once and on the adversarial images of every
(source, attack, seed). Records are keyed accordingly: a clean record has ``source`` and ``seed``
null; an attacked record names its source (``SourceInfo.id``) and seed. The per-image records are the
ground truth: every metric, interval, seed summary and attack comparison is derived from them
(:func:`benchmark.results.intervals.derive`), and readers check that (:mod:`benchmark.results.audit`).

Construction (results writer)::

    attack = AttackInfo.from_settings("transegpgd+mi", attack_fn.settings)   # hash + track derived
    metrics, summaries, comparisons = derive(images, ...)                    # from the image records
    result = RunResult(schema_version=SCHEMA_VERSION, dataset=DatasetInfo(...), models=(...),
                       sources=(SourceInfo(models=("pspnet_r50",), ensemble=None),), attacks=(attack,),
                       seeds=(0,), adv_format="float", intervals=IntervalInfo.default(), ...)
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.results.info import (
    BUILT_IN,
    CLEAN,
    ENSEMBLE_MODES,
    INFERENCE_MODES,
    ROLES,
    SHA256_RE,
    AttackInfo,
    DatasetInfo,
    ModelInfo,
    NumericsInfo,
    Origin,
    Provenance,
    ShardInfo,
    SourceInfo,
    Timings,
    Versions,
    _check,
)
from benchmark.results.records import (
    LINF_TOLERANCE,
    Comparison,
    ImageRecord,
    IntervalInfo,
    MetricRecord,
    PerturbationRecord,
    PerturbationSummary,
    SummaryRecord,
    check_image_records,
    check_perturbation_records,
    image_record_order,
    key_text,
)

__all__ = [  # the parts are defined in info.py and records.py; importable from here as before
    "ADV_FORMATS", "BUILT_IN", "CLEAN", "ENSEMBLE_MODES", "INFERENCE_MODES", "LINF_TOLERANCE", "ROLES",
    "SCHEMA_VERSION", "SHA256_RE", "AttackInfo", "Comparison", "DatasetInfo", "ImageRecord", "IntervalInfo",
    "MetricRecord", "ModelInfo", "NumericsInfo", "Origin", "PerturbationRecord", "PerturbationSummary",
    "Provenance", "RunResult", "ShardInfo", "SourceInfo", "SummaryRecord", "Timings", "Versions",
    "check_image_records", "check_perturbation_records", "image_record_order", "key_text",
]

SCHEMA_VERSION = 2
ADV_FORMATS = ("float", "png_uint8")


@dataclass(frozen=True)
class RunResult:
    """One evaluation run (``results.json``): every target under "clean" and under each attack of
    each source and seed; plus the seed summaries and attack comparisons derived from the images."""

    schema_version: int
    dataset: DatasetInfo
    models: tuple[ModelInfo, ...]
    sources: tuple[SourceInfo, ...]
    attacks: tuple[AttackInfo, ...]
    seeds: tuple[int, ...]
    adv_format: str
    intervals: IntervalInfo
    provenance: Provenance | None
    versions: Versions
    numerics: NumericsInfo | None
    timings: Timings
    metrics: tuple[MetricRecord, ...]
    summaries: tuple[SummaryRecord, ...]
    comparisons: tuple[Comparison, ...]
    perturbation_summaries: tuple[PerturbationSummary, ...]
    images: tuple[ImageRecord, ...]
    perturbations: tuple[PerturbationRecord, ...]

    def __post_init__(self) -> None:
        _check(self.schema_version == SCHEMA_VERSION,
               f"schema_version must be {SCHEMA_VERSION} after migration, got {self.schema_version}")
        names = [m.name for m in self.models]
        _check(len(set(names)) == len(names), f"duplicate model names in {names}")
        ids = [s.id for s in self.sources]
        _check(bool(ids) and len(set(ids)) == len(ids), f"sources must be non-empty and distinct, got {ids}")
        in_sources = {name for s in self.sources for name in s.models}
        role_sources = {m.name for m in self.models if "source" in m.roles}
        _check(in_sources == role_sources,
               f"the sources' models {sorted(in_sources)} must be the models with role 'source' {sorted(role_sources)}")
        _check(bool(self.seeds) and len(set(self.seeds)) == len(self.seeds),
               f"seeds must be distinct, got {self.seeds}")
        attacks = [a.name for a in self.attacks]
        _check(len(set(attacks)) == len(attacks), f"duplicate attack names in {attacks}")
        _check(self.adv_format in ADV_FORMATS, f"adv_format must be one of {list(ADV_FORMATS)}")
        index = {r.key: r for r in self.metrics}
        _check(len(index) == len(self.metrics), "duplicate record in metrics")
        expected = set(self.condition_keys())
        _check(set(index) == expected, "metrics must hold exactly every target x (clean, source x attack x seed); "
               f"missing {sorted(map(key_text, expected - set(index)))}, "
               f"extra {sorted(map(key_text, set(index) - expected))}")
        for r in self.metrics:
            _check(len(r.per_class_iou) == len(self.dataset.class_names),
                   f"metrics[{r.key_text}].per_class_iou has {len(r.per_class_iou)} "
                   f"values for {len(self.dataset.class_names)} classes")
            _check(r.num_images == self.dataset.num_images,
                   f"metrics[{r.key_text}].num_images {r.num_images} != dataset.num_images {self.dataset.num_images}")
        summary_keys = [(r.target, r.source, r.condition) for r in self.summaries]
        _check(sorted(summary_keys) == sorted((t, s.id, a) for t in self.targets for s in self.sources for a in attacks)
               and all(r.seeds == self.seeds for r in self.summaries),
               "summaries must hold exactly one record per target x source x attack, over the run's seeds")
        check_image_records(self.images, index, self.dataset)
        check_perturbation_records(self.perturbations, self.source_ids, self.attacks, self.seeds, self.dataset)

    def condition_keys(self) -> list[tuple[str, str | None, str, int | None]]:
        """Every (target, source, condition, seed) the run scores, in a fixed order."""
        return [key for t in self.targets for key in
                [(t, None, CLEAN, None), *((t, s.id, a.name, seed) for s in self.sources
                                           for a in self.attacks for seed in self.seeds)]]

    @property
    def targets(self) -> tuple[str, ...]:
        """Target model names, in the order of ``models``."""
        return tuple(m.name for m in self.models if "target" in m.roles)

    @property
    def source_ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.sources)

    @property
    def attack_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attacks)

    @property
    def source(self) -> SourceInfo:
        """The source of a single-source run (ResultError for a matrix run)."""
        _check(len(self.sources) == 1, f"this run has {len(self.sources)} sources; name one")
        return self.sources[0]

    def metric(self, target: str, condition: str, source: str | None = None, seed: int | None = None) -> MetricRecord:
        """The record of ``target`` under ``condition`` (clean, or an attack of ``source`` and ``seed``;
        both default to the only source and the first seed). KeyError if absent."""
        if condition != CLEAN:
            source = self.source.id if source is None else source
            seed = self.seeds[0] if seed is None else seed
        for r in self.metrics:
            if r.key == (target, source, condition, seed):
                return r
        raise KeyError((target, source, condition, seed))

    def summary(self, target: str, condition: str, source: str | None = None) -> SummaryRecord:
        """The seed summary of ``target`` under attack ``condition`` from ``source`` (default: the only one)."""
        source = self.source.id if source is None else source
        for r in self.summaries:
            if (r.target, r.source, r.condition) == (target, source, condition):
                return r
        raise KeyError((target, source, condition))

    def source_info(self, source_id: str) -> SourceInfo:
        return next(s for s in self.sources if s.id == source_id)

    def is_white_box(self, target: str, source: str | None = None) -> bool:
        """True when ``target`` is (one of) the model(s) of ``source`` (default: the only source)."""
        info = self.source if source is None else self.source_info(source)
        return target in info.models
