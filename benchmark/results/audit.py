"""Per-image audit records: the dataset-level metrics recomputed from them, and comparisons.

A result file (and every leaderboard entry) carries, per image × target × condition, the integer
pixel counts of :class:`~benchmark.results.schema.ImageRecord`. They add up over images, so the
recorded mIoU, per-class IoU, pixel accuracy and success rate follow from them *exactly*, and so do
the bootstrap intervals, seed summaries and comparisons (deterministic resampling);
:func:`check_consistency` recomputes all of them and refuses a file whose numbers disagree (a
hand-edited metric). ``benchmark verify`` re-runs the first K images and compares their counts with
:func:`compare_images`.
"""

from __future__ import annotations

from collections.abc import Iterable

from benchmark.errors import ResultError
from benchmark.results.intervals import derive, perturbation_summaries
from benchmark.results.schema import ImageRecord, key_text

#: |recorded - recomputed| allowed for a metric value. The recomputation uses the same integer counts
#: and the same arithmetic, so an untouched file agrees to the last bit; the slack only absorbs JSON
#: float formatting.
METRIC_TOLERANCE = 1e-12


def derive_from(record) -> tuple:
    """:func:`benchmark.results.intervals.derive` for a RunResult or a LeaderboardEntry."""
    return derive(record.images, targets=record.targets, sources=record.source_ids, attacks=record.attack_names,
                  seeds=record.seeds, num_classes=len(record.dataset.class_names), intervals=record.intervals)


def check_consistency(record, file: str) -> None:
    """Raise ResultError if any metric, interval, seed summary or comparison of ``record`` (a RunResult
    or a LeaderboardEntry) differs from its recomputation from the record's own image records."""
    metrics, summaries, comparisons = derive_from(record)
    perturbations = perturbation_summaries(record.perturbations, record.source_ids, record.attack_names)
    compare_records(record.perturbation_summaries, perturbations, file,
                    key=lambda r: f"perturbation summary {r.source}/{r.condition}")
    compare_records(record.metrics, metrics, file, key=lambda r: r.key_text)
    compare_records(record.summaries, summaries, file, key=lambda r: f"summary {r.target}/{r.source}/{r.condition}")
    compare_records(record.comparisons, comparisons, file,
                    key=lambda r: f"comparison {r.target}/{r.source}/{r.first}-{r.second}")


def compare_records(stored: Iterable, fresh: Iterable, file: str, key) -> None:
    """Field-by-field equality (floats to :data:`METRIC_TOLERANCE`) of two record sequences."""
    fresh_by_key = {key(r): r for r in fresh}
    stored = list(stored)
    if sorted(map(key, stored)) != sorted(fresh_by_key):
        extra = sorted(set(map(key, stored)) ^ set(fresh_by_key))
        raise ResultError(f"{file}: records {extra[:3]} do not follow from the image records")
    for record in stored:
        again = fresh_by_key[key(record)]
        for name, value in vars(record).items():
            if not same_values(value, getattr(again, name)):
                raise ResultError(f"{file}: {key(record)} {name} is {value} but its image records give "
                                  f"{getattr(again, name)}: the file was altered")


def compare_images(recorded: Iterable[ImageRecord], rerun: Iterable[ImageRecord],
                   tolerance: float = 0.0) -> list[str]:
    """Differences between recorded and re-run records of the images that were re-run.

    ``tolerance`` is the largest allowed |difference| of any count, as a fraction of the image's valid
    pixels (0: exact, the CPU default; GPU kernels may need a little slack). Returns one line per
    disagreeing record; an empty list means agreement.
    """
    stored = {(r.image, *r.key): r for r in recorded}
    problems = []
    for fresh in rerun:
        key = (fresh.image, *fresh.key)
        old = stored.get(key)
        if old is None:
            problems.append(f"{fresh.image}/{key_text(fresh.key)}: not in the entry")
            continue
        valid = max(sum(fresh.labelled), 1)
        worst = max(_count_gap(old, fresh), abs((old.fooled or 0) - (fresh.fooled or 0))) / valid
        if worst > tolerance:
            problems.append(f"{fresh.image}/{key_text(fresh.key)}: counts differ by up to {worst:.2%} of the valid pixels")
    return problems


def _count_gap(a: ImageRecord, b: ImageRecord) -> int:
    def table(r: ImageRecord) -> dict[int, tuple[int, int, int]]:
        return {k: (i, p, g) for k, i, p, g in zip(r.classes, r.intersection, r.predicted, r.labelled)}

    ta, tb = table(a), table(b)
    return max((abs(x - y) for k in ta.keys() | tb.keys()
                for x, y in zip(ta.get(k, (0, 0, 0)), tb.get(k, (0, 0, 0)))), default=0)


def same_values(a, b) -> bool:
    """Equality of record values, floats to :data:`METRIC_TOLERANCE` (sequences element by element)."""
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(a - b) <= METRIC_TOLERANCE
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(same_values(x, y) for x, y in zip(a, b))
    return a == b
