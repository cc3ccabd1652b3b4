"""The per-metric, per-image and perturbation records of a result (:mod:`benchmark.results.schema`): the
scores of each (target, source, attack, seed), their seed summaries and attack comparisons, the pixel
counts of each image (the ground truth the others are derived from) and the achieved perturbations, with
the checks that tie the records of a run or an entry together.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from benchmark.errors import ResultError
from benchmark.results.info import CLEAN, AttackInfo, DatasetInfo, _check, _fraction


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
