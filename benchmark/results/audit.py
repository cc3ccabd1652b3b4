"""Per-image audit records: the dataset-level metrics recomputed from them, and comparisons.

A result file (and every leaderboard entry) carries, per image × target × condition, the integer
pixel counts of :class:`~benchmark.results.schema.ImageRecord`. They add up over images, so the
recorded mIoU, per-class IoU, pixel accuracy and success rate follow from them *exactly*;
:func:`check_consistency` recomputes them and refuses a file whose numbers disagree (a hand-edited
metric). ``benchmark verify`` re-runs the first K images and compares their counts with
:func:`compare_images`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from benchmark.errors import ResultError
from benchmark.metrics import scores_from_counts
from benchmark.results.schema import CLEAN, ImageRecord, MetricRecord

#: |recorded - recomputed| allowed for a metric value. The recomputation uses the same integer counts
#: and the same arithmetic, so an untouched file agrees to the last bit; the slack only absorbs JSON
#: float formatting.
METRIC_TOLERANCE = 1e-12


def metrics_from_images(images: Iterable[ImageRecord], num_classes: int) -> dict[tuple[str, str], MetricRecord]:
    """(target, condition) -> MetricRecord, computed from the per-image counts alone."""
    totals: dict[tuple[str, str], list[list[int]]] = defaultdict(lambda: [[0] * num_classes for _ in range(3)])
    fooled: dict[tuple[str, str], int] = defaultdict(int)
    counted: dict[tuple[str, str], int] = defaultdict(int)
    clean_correct: dict[tuple[str, str], int] = defaultdict(int)  # (target, image) -> correct on clean
    for record in images:
        key = (record.target, record.condition)
        inter, pred, gt = totals[key]
        for k, i, p, g in zip(record.classes, record.intersection, record.predicted, record.labelled):
            inter[k] += i
            pred[k] += p
            gt[k] += g
        counted[key] += 1
        if record.condition == CLEAN:
            clean_correct[record.target] += sum(record.intersection)
        else:
            fooled[key] += record.fooled
    out = {}
    for (target, condition), (inter, pred, gt) in totals.items():
        scores = scores_from_counts(inter, pred, gt, counted[(target, condition)])
        success = None
        if condition != CLEAN and clean_correct.get(target):
            success = fooled[(target, condition)] / clean_correct[target]
        out[(target, condition)] = MetricRecord.from_scores(target, condition, scores, success)
    return out


def check_consistency(metrics: Iterable[MetricRecord], images: Iterable[ImageRecord], num_classes: int,
                      file: str) -> None:
    """Raise ResultError if any recorded metric differs from its recomputation from the image records."""
    recomputed = metrics_from_images(images, num_classes)
    for record in metrics:
        fresh = recomputed.get((record.target, record.condition))
        if fresh is None:
            raise ResultError(f"{file}: no image records for {record.target}/{record.condition}")
        pairs = [("miou", record.miou, fresh.miou), ("pixel_accuracy", record.pixel_accuracy, fresh.pixel_accuracy),
                 ("success_rate", record.success_rate, fresh.success_rate),
                 *((f"per_class_iou[{k}]", a, b) for k, (a, b) in
                   enumerate(zip(record.per_class_iou, fresh.per_class_iou)))]
        for name, stored, again in pairs:
            if not _close(stored, again):
                raise ResultError(f"{file}: {record.target}/{record.condition} {name} is {stored} but its image "
                                  f"records give {again}: the file was altered")


def compare_images(recorded: Iterable[ImageRecord], rerun: Iterable[ImageRecord],
                   tolerance: float = 0.0) -> list[str]:
    """Differences between recorded and re-run records of the images that were re-run.

    ``tolerance`` is the largest allowed |difference| of any count, as a fraction of the image's valid
    pixels (0: exact, the CPU default; GPU kernels may need a little slack). Returns one line per
    disagreeing record; an empty list means agreement.
    """
    stored = {(r.image, r.target, r.condition): r for r in recorded}
    problems = []
    for fresh in rerun:
        key = (fresh.image, fresh.target, fresh.condition)
        old = stored.get(key)
        if old is None:
            problems.append(f"{'/'.join(key)}: not in the entry")
            continue
        valid = max(sum(fresh.labelled), 1)
        worst = max(_count_gap(old, fresh), abs((old.fooled or 0) - (fresh.fooled or 0))) / valid
        if worst > tolerance:
            problems.append(f"{'/'.join(key)}: counts differ by up to {worst:.2%} of the valid pixels")
    return problems


def _count_gap(a: ImageRecord, b: ImageRecord) -> int:
    def table(r: ImageRecord) -> dict[int, tuple[int, int, int]]:
        return {k: (i, p, g) for k, i, p, g in zip(r.classes, r.intersection, r.predicted, r.labelled)}

    ta, tb = table(a), table(b)
    return max((abs(x - y) for k in ta.keys() | tb.keys()
                for x, y in zip(ta.get(k, (0, 0, 0)), tb.get(k, (0, 0, 0)))), default=0)


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= METRIC_TOLERANCE
