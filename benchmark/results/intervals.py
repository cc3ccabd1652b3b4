"""Everything a run reports, derived from its per-image records: metrics with intervals, seed
summaries and attack comparisons (one function, :func:`derive`, used by the writer, the readers'
consistency check and the v1 -> v2 migration).

- **Metrics.** Point values from the summed integer counts (exactly mmseg's dataset-level numbers);
  intervals from the paired bootstrap of :mod:`benchmark.metrics.bootstrap`: one set of image resamples
  for the whole run, so every record, summary and difference sees the same draws.
- **Summaries** per (source, target, attack): mean and sample standard deviation over seeds; the
  interval is that of the seed mean, each resample carrying every seed of the images it draws.
- **Comparisons** per (source, target) and pair of attacks (in run order): seed-mean mIoU of the first
  minus the second, with the interval of that difference over the same resamples (paired); a pair is
  *distinguishable* when the interval excludes 0.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations

import torch

from benchmark.errors import ResultError
from benchmark.metrics import scores_from_counts
from benchmark.metrics.bootstrap import miou_samples, percentile_interval, ratio_samples, resample_weights
from benchmark.results.schema import (CLEAN, Comparison, ImageRecord, IntervalInfo, MetricRecord, SummaryRecord,
                                      key_text)


@dataclass(frozen=True)
class Counts:
    """Per-image counts of one record key, rows in the run's image order: (N, K) tables and (N,)."""

    intersection: torch.Tensor
    predicted: torch.Tensor
    labelled: torch.Tensor
    fooled: torch.Tensor | None


def image_order(images: Iterable[ImageRecord]) -> list[str]:
    """The image names of a run, sorted: the row order of every count table and resample."""
    return sorted({r.image for r in images})


def count_tables(images: Sequence[ImageRecord], num_classes: int, names: Sequence[str] | None = None) -> dict[tuple, Counts]:
    """Record key -> :class:`Counts`, rows ordered as ``names`` (default: :func:`image_order`)."""
    names = list(names) if names is not None else image_order(images)
    row = {name: i for i, name in enumerate(names)}
    grouped: dict[tuple, list[ImageRecord]] = {}
    for record in images:
        grouped.setdefault(record.key, []).append(record)
    tables = {}
    for key, records in grouped.items():
        rows = torch.tensor([row[r.image] for r in records for _ in r.classes], dtype=torch.int64)
        cols = torch.tensor([k for r in records for k in r.classes], dtype=torch.int64)

        def table(field: str) -> torch.Tensor:
            out = torch.zeros(len(names), num_classes, dtype=torch.int64)
            out[rows, cols] = torch.tensor([v for r in records for v in getattr(r, field)], dtype=torch.int64)
            return out

        fooled = None
        if key[2] != CLEAN:
            fooled = torch.zeros(len(names), dtype=torch.int64)
            fooled[[row[r.image] for r in records]] = torch.tensor([r.fooled for r in records], dtype=torch.int64)
        tables[key] = Counts(table("intersection"), table("predicted"), table("labelled"), fooled)
    return tables


def point_scores(images: Sequence[ImageRecord], num_classes: int) -> dict[tuple, tuple]:
    """Record key -> (Scores, success rate or None) from the summed counts of ``images`` (no intervals)."""
    tables = count_tables(images, num_classes)
    out = {}
    for key, counts in tables.items():
        n = counts.intersection.shape[0]
        scores = scores_from_counts(counts.intersection.sum(0).tolist(), counts.predicted.sum(0).tolist(),
                                    counts.labelled.sum(0).tolist(), n)
        success = None
        if key[2] != CLEAN:
            correct = int(tables[(key[0], None, CLEAN, None)].intersection.sum())
            success = int(counts.fooled.sum()) / correct if correct > 0 else None
        out[key] = (scores, success)
    return out


def _ci(samples: torch.Tensor, level: float) -> tuple[float, float] | None:
    interval = percentile_interval(samples, level)
    return None if interval is None else (interval[0], interval[1])


def derive(images: Sequence[ImageRecord], *, targets: Sequence[str], sources: Sequence[str],
           attacks: Sequence[str], seeds: Sequence[int], num_classes: int,
           intervals: IntervalInfo) -> tuple[tuple[MetricRecord, ...], tuple[SummaryRecord, ...], tuple[Comparison, ...]]:
    """Metrics (run order: target, then clean and source x attack x seed), summaries and comparisons."""
    names = image_order(images)
    tables = count_tables(images, num_classes, names)
    weights = resample_weights(len(names), intervals.resamples, intervals.seed)
    keys = [key for t in targets for key in
            [(t, None, CLEAN, None), *((t, s, a, seed) for s in sources for a in attacks for seed in seeds)]]
    missing = [key_text(k) for k in keys if k not in tables]
    if missing:
        raise ResultError(f"no image records for {missing[0]} ({len(missing)} conditions lack records)")
    metrics, miou_draws, success_draws = [], {}, {}
    for key in keys:
        counts = tables[key]
        target, source, condition, seed = key
        scores = scores_from_counts(counts.intersection.sum(0).tolist(), counts.predicted.sum(0).tolist(),
                                    counts.labelled.sum(0).tolist(), len(names))
        if math.isnan(scores.miou):
            raise ResultError(f"metrics[{key_text(key)}]: no valid pixel was scored")
        miou_draws[key] = miou_samples(weights, counts.intersection, counts.predicted, counts.labelled)
        success, success_ci = None, None
        if condition != CLEAN:
            correct = tables[(target, None, CLEAN, None)].intersection.sum(1)
            if int(correct.sum()) > 0:
                success = int(counts.fooled.sum()) / int(correct.sum())
                success_draws[key] = ratio_samples(weights, counts.fooled, correct)
                success_ci = _ci(success_draws[key], intervals.level)
        metrics.append(MetricRecord(target=target, source=source, condition=condition, seed=seed, miou=scores.miou,
                                    miou_ci=_ci(miou_draws[key], intervals.level),
                                    per_class_iou=tuple(scores.per_class_iou), pixel_accuracy=scores.pixel_accuracy,
                                    macc=scores.macc, per_class_acc=tuple(scores.per_class_acc),
                                    success_rate=success, success_rate_ci=success_ci, num_images=len(names)))
    points = {r.key: r for r in metrics}
    summaries, comparisons = [], []
    for target in targets:
        for source in sources:
            seed_mean = {}
            for attack in attacks:
                per_seed = [(target, source, attack, seed) for seed in seeds]
                mious = [points[k].miou for k in per_seed]
                seed_mean[attack] = (math.fsum(mious) / len(mious), torch.stack([miou_draws[k] for k in per_seed]).mean(0))
                rates = [points[k].success_rate for k in per_seed]
                defined = all(rate is not None for rate in rates)
                summaries.append(SummaryRecord(
                    target=target, source=source, condition=attack, seeds=tuple(seeds), miou_mean=seed_mean[attack][0],
                    miou_std=statistics.stdev(mious) if len(mious) > 1 else None, miou_ci=_ci(seed_mean[attack][1], intervals.level),
                    success_rate_mean=math.fsum(rates) / len(rates) if defined else None,
                    success_rate_std=statistics.stdev(rates) if defined and len(rates) > 1 else None,
                    success_rate_ci=_ci(torch.stack([success_draws[k] for k in per_seed]).mean(0), intervals.level)
                    if defined else None))
            for first, second in combinations(attacks, 2):
                ci = _ci(seed_mean[first][1] - seed_mean[second][1], intervals.level)
                comparisons.append(Comparison(target=target, source=source, first=first, second=second,
                                              difference=seed_mean[first][0] - seed_mean[second][0], ci=ci,
                                              distinguishable=ci[0] > 0 or ci[1] < 0))
    return tuple(metrics), tuple(summaries), tuple(comparisons)


def mean_miou_draws(images: Sequence[ImageRecord], keys_per_target: Sequence[Sequence[tuple]], num_classes: int,
                    intervals: IntervalInfo) -> tuple[list[str], torch.Tensor]:
    """Resampled mean over targets of the seed-mean mIoU: (image order, (B,) draws).

    ``keys_per_target`` lists, per target, the record keys of its seeds. Two calls on the same image
    set and interval settings use the same resamples, so their draws can be subtracted (paired)."""
    names = image_order(images)
    tables = count_tables(images, num_classes, names)
    weights = resample_weights(len(names), intervals.resamples, intervals.seed)
    per_target = [torch.stack([miou_samples(weights, tables[k].intersection, tables[k].predicted,
                                            tables[k].labelled) for k in keys]).mean(0) for keys in keys_per_target]
    return names, torch.stack(per_target).mean(0)


def interval_of(draws: torch.Tensor, level: float) -> tuple[float, float] | None:
    """The percentile interval of bootstrap draws (None if none is finite)."""
    return _ci(draws, level)


def perturbation_summaries(records: Sequence, sources: Sequence[str], attacks: Sequence[str]) -> tuple:
    """Per (source, attack), over every image and seed: mean and max L-inf in 1/255, mean L2."""
    from benchmark.results.schema import PerturbationSummary

    out = []
    if not records:
        return ()  # a file written before perturbations were recorded (schema version 1)
    for source in sources:
        for attack in attacks:
            chosen = [r for r in records if r.source == source and r.condition == attack]
            if not chosen:
                raise ResultError(f"no perturbation records for {source}/{attack}")
            out.append(PerturbationSummary(
                source=source, condition=attack, mean_linf_255=255 * math.fsum(r.linf for r in chosen) / len(chosen),
                max_linf_255=255 * max(r.linf for r in chosen), mean_l2=math.fsum(r.l2 for r in chosen) / len(chosen)))
    return tuple(out)
