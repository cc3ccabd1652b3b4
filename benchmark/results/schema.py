"""``results.json`` schema: frozen dataclasses with ``schema_version`` (architecture §3.5).

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

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from benchmark.errors import ResultError
from benchmark.results.codec import OMIT_DEFAULT
from benchmark.results.tracks import TrackInfo, settings_hash, track_from_settings

SCHEMA_VERSION = 2
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
class ShardInfo:
    """A job-array shard: shard ``index`` of ``count`` of a job of ``job_images`` images, holding the
    images at positions ``index, index + count, ...`` of the job's image list (the DDP rank rule)."""

    index: int
    count: int
    job_images: int

    def __post_init__(self) -> None:
        _check(0 <= self.index < self.count, f"shard index {self.index} must be in [0, count={self.count})")
        _check(self.job_images >= 1, f"shard job_images must be >= 1, got {self.job_images}")

    @property
    def text(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def num_images(self) -> int:
        """Images this shard must hold: the positions index, index + count, ... below job_images."""
        return len(range(self.index, self.job_images, self.count))


@dataclass(frozen=True)
class DatasetInfo:
    """The evaluated data. ``num_images`` were evaluated out of ``split_size`` in the full split;
    ``image_limit`` is the run's cap on images (None: whole split). ``input_policy`` describes resizing
    and cropping (pitfalls §13); ``class_names`` fixes the order of per-class IoU. ``batch_size`` is
    the images per batch of the run: results do not depend on it beyond last-bit floating-point
    differences at near-tied pixels, and ``benchmark verify`` reuses it to repeat a run exactly.
    ``shard`` marks one shard of a job array (None otherwise; left out of files that are not shards):
    such a result is partial until ``benchmark summarize`` joins all shards of the job."""

    name: str
    split: str
    num_images: int
    split_size: int
    image_limit: int | None
    input_policy: str
    class_names: tuple[str, ...]
    ignore_index: int
    batch_size: int
    shard: ShardInfo | None = field(default=None, metadata={OMIT_DEFAULT: True})

    def __post_init__(self) -> None:
        _check(self.batch_size >= 1, f"dataset.batch_size must be >= 1, got {self.batch_size}")
        if self.shard is not None:
            shard = self.shard
            _check(shard.num_images == self.num_images, f"dataset.shard {shard.text}: a shard of a job of "
                   f"{shard.job_images} images holds {shard.num_images} images, not {self.num_images}")
        _check(0 <= self.num_images <= self.split_size,
               f"dataset.num_images {self.num_images} must be in [0, split_size={self.split_size}]")
        _check(self.image_limit is None or self.image_limit >= 1,
               f"dataset.image_limit must be null or >= 1, got {self.image_limit}")
        _check(len(self.class_names) >= 1, "dataset.class_names is empty")

    @property
    def is_partial(self) -> bool:
        """True when fewer images than the full split were evaluated, or the run is one shard of a job
        (not comparable)."""
        return self.num_images != self.split_size or self.shard is not None


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
    """Wall-clock seconds of the evaluation and throughput in images per second (of this attempt: a
    resumed run counts the images it attacked, not those its journal already held)."""

    wall_s: float
    images_per_s: float

    def __post_init__(self) -> None:
        _check(self.wall_s >= 0 and self.images_per_s >= 0, "timings must be non-negative")


def _interval(value: tuple[float, ...] | None, name: str, fraction: bool = True) -> None:
    if value is None:
        return
    _check(len(value) == 2 and value[0] <= value[1], f"{name} must be [low, high] with low <= high, got {value!r}")
    if fraction:
        for v in value:
            _fraction(v, name)


def _condition_key(condition: str, source: str | None, seed: int | None, where: str) -> None:
    _check((condition == CLEAN) == (source is None) == (seed is None),
           f"{where}: source and seed must be null exactly for the clean condition")


@dataclass(frozen=True)
class IntervalInfo:
    """How the intervals were computed: ``method`` (words), ``level`` (e.g. 0.95), ``resamples``
    (bootstrap draws) and ``seed`` (of the resampling generator). See :mod:`benchmark.metrics.bootstrap`."""

    method: str
    level: float
    resamples: int
    seed: int

    def __post_init__(self) -> None:
        _check(0 < self.level < 1 and self.resamples >= 1, "intervals: level must be in (0, 1), resamples >= 1")

    @classmethod
    def default(cls, resamples: int | None = None, seed: int = 0) -> IntervalInfo:
        from benchmark.metrics.bootstrap import DEFAULT_LEVEL, DEFAULT_RESAMPLES, METHOD

        return cls(method=METHOD, level=DEFAULT_LEVEL, resamples=resamples or DEFAULT_RESAMPLES, seed=seed)


@dataclass(frozen=True)
class MetricRecord:
    """Scores of one ``target`` under one condition: "clean", or attack ``condition`` from ``source``
    with ``seed``. ``miou_ci`` / ``success_rate_ci`` are the bootstrap intervals [low, high].
    ``pixel_accuracy`` is mmseg's aAcc, ``macc`` the mean of ``per_class_acc`` over labelled classes
    (``None`` for a class that is not labelled).

    ``success_rate`` (and its interval) is None for "clean" and for an attack when no valid pixel was
    correct on clean images."""

    target: str
    source: str | None
    condition: str
    seed: int | None
    miou: float
    miou_ci: tuple[float, ...]
    per_class_iou: tuple[float | None, ...]
    pixel_accuracy: float
    macc: float
    per_class_acc: tuple[float | None, ...]
    success_rate: float | None
    success_rate_ci: tuple[float, ...] | None
    num_images: int

    def __post_init__(self) -> None:
        where = f"metrics[{self.key_text}]"
        _condition_key(self.condition, self.source, self.seed, where)
        for name in ("miou", "pixel_accuracy", "macc", "success_rate"):
            _fraction(getattr(self, name), f"{where}.{name}")
        for k, iou in enumerate(self.per_class_iou):
            _fraction(iou, f"{where}.per_class_iou[{k}]")
        for k, acc in enumerate(self.per_class_acc):
            _fraction(acc, f"{where}.per_class_acc[{k}]")
        _check(len(self.per_class_acc) == len(self.per_class_iou), f"{where}: one accuracy per class")
        _interval(self.miou_ci, f"{where}.miou_ci")
        _interval(self.success_rate_ci, f"{where}.success_rate_ci")
        _check(self.condition != CLEAN or self.success_rate is None,
               f"{where}.success_rate must be null for the clean condition")
        _check((self.success_rate is None) == (self.success_rate_ci is None),
               f"{where}: success_rate_ci must be null exactly when success_rate is")

    @property
    def key(self) -> tuple[str, str | None, str, int | None]:
        return (self.target, self.source, self.condition, self.seed)

    @property
    def key_text(self) -> str:
        return key_text(self.key)


def key_text(key: tuple[str, str | None, str, int | None]) -> str:
    """``target/clean`` or ``target/source/attack@seed``: a record key for messages."""
    target, source, condition, seed = key
    return f"{target}/{condition}" if source is None else f"{target}/{source}/{condition}@{seed}"


@dataclass(frozen=True)
class SummaryRecord:
    """One (``source``, ``target``, attack ``condition``) over all ``seeds``: the mean and sample
    standard deviation (None with one seed) of the per-seed mIoU and success rate, and the bootstrap
    interval of the seed mean (images resampled with all their seeds: the seeds are pooled)."""

    target: str
    source: str
    condition: str
    seeds: tuple[int, ...]
    miou_mean: float
    miou_std: float | None
    miou_ci: tuple[float, ...]
    success_rate_mean: float | None
    success_rate_std: float | None
    success_rate_ci: tuple[float, ...] | None

    def __post_init__(self) -> None:
        where = f"summaries[{self.target}/{self.source}/{self.condition}]"
        _check(self.condition != CLEAN and len(self.seeds) >= 1, f"{where}: an attack over at least one seed")
        _fraction(self.miou_mean, f"{where}.miou_mean")
        _fraction(self.success_rate_mean, f"{where}.success_rate_mean")
        _interval(self.miou_ci, f"{where}.miou_ci")
        _interval(self.success_rate_ci, f"{where}.success_rate_ci")
        for name in ("miou_std", "success_rate_std"):
            value = getattr(self, name)
            _check(value is None or (math.isfinite(value) and value >= 0), f"{where}.{name} must be >= 0")
        _check((self.miou_std is None) == (len(self.seeds) == 1), f"{where}: miou_std is null exactly for one seed")


@dataclass(frozen=True)
class Comparison:
    """Attack ``first`` minus attack ``second`` on one (``source``, ``target``): the difference of
    their seed-mean mIoU (fractions; negative: ``first`` leaves a lower mIoU, i.e. is stronger) and
    its paired bootstrap interval; ``distinguishable`` is True when the interval excludes 0."""

    target: str
    source: str
    first: str
    second: str
    difference: float
    ci: tuple[float, ...]
    distinguishable: bool

    def __post_init__(self) -> None:
        where = f"comparisons[{self.target}/{self.source}/{self.first}-{self.second}]"
        _check(self.first != self.second, f"{where}: an attack compared with itself")
        _interval(self.ci, f"{where}.ci", fraction=False)
        _check(self.distinguishable == (self.ci[0] > 0 or self.ci[1] < 0),
               f"{where}: distinguishable must say whether the interval excludes 0")


@dataclass(frozen=True)
class NumericsInfo:
    """What decides the last bits of a run's numbers (pitfalls §21): the ``device`` type and
    ``device_name`` (GPU or CPU model), torch's intra-op ``threads`` per process, the attack's
    ``autocast`` dtype (None: fp32), the deterministic-algorithm, cuDNN-benchmark and TF32 settings,
    whether the models ran in ``channels_last`` memory and the ``compile`` backend of the source
    (None: eager; both left out of files that do not use them).
    Two runs with equal numerics on the same versions give bit-identical records; otherwise counts can
    differ at near-tied pixels, which ``benchmark verify`` then allows with a named tolerance."""

    device: str
    device_name: str
    threads: int
    autocast: str | None
    deterministic: bool
    cudnn_benchmark: bool
    tf32: bool
    channels_last: bool = field(default=False, metadata={OMIT_DEFAULT: True})
    compile: str | None = field(default=None, metadata={OMIT_DEFAULT: True})

    @classmethod
    def current(cls, device, autocast: str | None, channels_last: bool = False,
                compile: str | None = None) -> NumericsInfo:
        import torch

        device = torch.device(device)
        if device.type == "cuda":
            name = torch.cuda.get_device_name(device)
        else:
            name = _cpu_model()
        return cls(device=device.type, device_name=name, threads=torch.get_num_threads(), autocast=autocast,
                   deterministic=torch.are_deterministic_algorithms_enabled(),
                   cudnn_benchmark=bool(torch.backends.cudnn.benchmark),
                   tf32=bool(torch.backends.cuda.matmul.allow_tf32), channels_last=channels_last, compile=compile)


def _cpu_model() -> str:
    import platform

    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@dataclass(frozen=True)
class Provenance:
    """Where a run's adversarial images came from when it did not craft them: ``benchmark evaluate``
    read the saved set described by the manifest at ``adv_dir`` with sha256 ``manifest_sha256``."""

    adv_dir: str
    manifest_sha256: str

    def __post_init__(self) -> None:
        _check(bool(SHA256_RE.match(self.manifest_sha256)), "provenance.manifest_sha256 must be 64 hex")


@dataclass(frozen=True)
class ImageRecord:
    """Pixel counts of one ``image`` for one ``target`` under one ``condition``: the audit trail.

    ``source`` and ``seed`` are null for "clean" and name the attacked condition's source and seed
    otherwise. Over valid pixels (label != ignore_index): for each class in ``classes`` (ascending; classes
    with all-zero counts are left out) the pixels predicted correctly (``intersection``), predicted as
    the class (``predicted``) and labelled as the class (``labelled``). ``fooled`` counts the valid
    pixels correct on the clean image and wrong under this attack (None for "clean"). The counts add
    up over images, so the dataset-level metrics follow from them exactly (:mod:`benchmark.results.audit`),
    and ``benchmark verify`` recomputes them for the images it re-runs."""

    image: str
    target: str
    source: str | None
    condition: str
    seed: int | None
    classes: tuple[int, ...]
    intersection: tuple[int, ...]
    predicted: tuple[int, ...]
    labelled: tuple[int, ...]
    fooled: int | None

    def __post_init__(self) -> None:
        where = f"images[{self.image}/{key_text(self.key)}]"
        _condition_key(self.condition, self.source, self.seed, where)
        n = len(self.classes)
        _check(len(self.intersection) == len(self.predicted) == len(self.labelled) == n,
               f"{where}: classes, intersection, predicted and labelled must have equal lengths")
        _check(list(self.classes) == sorted(set(self.classes)), f"{where}: classes must be ascending and distinct")
        _check(all(0 <= i <= min(p, g) for i, p, g in zip(self.intersection, self.predicted, self.labelled)),
               f"{where}: counts must satisfy 0 <= intersection <= predicted, labelled")
        _check((self.condition == CLEAN) == (self.fooled is None),
               f"{where}: fooled must be null exactly for the clean condition")
        _check(self.fooled is None or 0 <= self.fooled <= sum(self.labelled), f"{where}: fooled out of range")

    @property
    def key(self) -> tuple[str, str | None, str, int | None]:
        return (self.target, self.source, self.condition, self.seed)


def image_record_order(targets, attacked):
    """The order of a result's image records, as a sort key: image name, then target (in ``targets``
    order), then the clean condition before the attacked ones (``attacked``: (source, attack, seed) in
    run order). The writer sorts by it, and a join of shards reproduces the writer's file with it."""
    target_rank = {name: i for i, name in enumerate(targets)}
    condition_rank = {(None, CLEAN, None): 0, **{tuple(c): i for i, c in enumerate(attacked, start=1)}}

    def key(record: ImageRecord) -> tuple:
        return record.image, target_rank[record.target], condition_rank[(record.source, record.condition, record.seed)]

    return key


@dataclass(frozen=True)
class PerturbationRecord:
    """The perturbation attack ``condition`` from ``source`` with ``seed`` left on ``image``, as the
    targets saw it: ``linf`` the largest absolute pixel change and ``l2`` the Euclidean norm over all
    pixels and channels, both in units of the [0, 1] pixel range."""

    image: str
    source: str
    condition: str
    seed: int
    linf: float
    l2: float

    def __post_init__(self) -> None:
        where = f"perturbations[{self.image}/{self.source}/{self.condition}@{self.seed}]"
        _check(math.isfinite(self.linf) and 0 <= self.linf <= 1 and math.isfinite(self.l2) and self.l2 >= 0,
               f"{where}: linf must be in [0, 1] and l2 >= 0")


@dataclass(frozen=True)
class PerturbationSummary:
    """The achieved perturbation of attack ``condition`` from ``source`` over every image and seed:
    mean and largest L-inf in 1/255 units, and the mean L2 ([0, 1] units)."""

    source: str
    condition: str
    mean_linf_255: float
    max_linf_255: float
    mean_l2: float


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
        _check(bool(self.seeds) and len(set(self.seeds)) == len(self.seeds), f"seeds must be distinct, got {self.seeds}")
        attacks = [a.name for a in self.attacks]
        _check(len(set(attacks)) == len(attacks), f"duplicate attack names in {attacks}")
        _check(self.adv_format in ADV_FORMATS, f"adv_format must be one of {list(ADV_FORMATS)}")
        index = {r.key: r for r in self.metrics}
        _check(len(index) == len(self.metrics), "duplicate record in metrics")
        expected = set(self.condition_keys())
        _check(set(index) == expected, "metrics must hold exactly every target x (clean, source x attack x seed); "
               f"missing {sorted(map(key_text, expected - set(index)))}, extra {sorted(map(key_text, set(index) - expected))}")
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


#: float32 rounding allowed above eps when a perturbation is measured (|adv - clean| of float32 images)
LINF_TOLERANCE = 1e-6


def check_perturbation_records(records, sources, attacks: tuple[AttackInfo, ...], seeds, dataset: DatasetInfo) -> None:
    """One perturbation record per image x source x attack x seed (or none: a version-1 file), each
    within its attack's budget: ``linf <= eps + LINF_TOLERANCE``, eps read from the attack's settings
    (which its settings hash protects), never from a field beside them (pitfalls §23)."""
    if not records:
        return
    keys = [(r.image, r.source, r.condition, r.seed) for r in records]
    _check(len(set(keys)) == len(keys), "perturbations: duplicate records")
    wanted = {(s, a.name, seed) for s in sources for a in attacks for seed in seeds}
    _check({k[1:] for k in keys} == wanted and len(keys) == len(wanted) * dataset.num_images,
           "perturbations must hold one record per image, source, attack and seed")
    # an attack without a numeric eps has no budget (and no track): submit refuses it, evaluate's manifest too
    budgets = {a.name: float(a.settings["eps"]) for a in attacks
               if isinstance(a.settings.get("eps"), (int, float)) and not isinstance(a.settings["eps"], bool)}
    for r in records:
        eps = budgets.get(r.condition)
        if eps is not None and r.linf > eps + LINF_TOLERANCE:
            raise ResultError(f"perturbations: image {r.image} under {r.condition} from {r.source} moved "
                              f"{255 * r.linf:.2f}/255, over its eps {255 * eps:.2f}/255")


def check_image_records(images: tuple[ImageRecord, ...], metrics: Mapping[tuple, MetricRecord],
                        dataset: DatasetInfo) -> None:
    """Every record key of ``metrics`` has one image record per evaluated image, and no other."""
    seen: dict[tuple, set[str]] = {key: set() for key in metrics}
    for record in images:
        key = record.key
        _check(key in seen, f"images: record for unknown condition {key_text(key)}")
        _check(record.image not in seen[key], f"images: duplicate record {record.image}/{key_text(key)}")
        _check(all(0 <= k < len(dataset.class_names) for k in record.classes),
               f"images[{record.image}]: class index out of range")
        seen[key].add(record.image)
    names = next(iter(seen.values()), set())
    for key, found in seen.items():
        _check(len(found) == dataset.num_images and found == names,
               f"images: {key_text(key)} has {len(found)} image records for {dataset.num_images} images")
