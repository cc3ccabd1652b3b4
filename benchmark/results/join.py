"""``benchmark summarize``: several result files of the same images joined into one run.

Typical joins: one ``benchmark run`` per source (each evaluating every target) into the source x
target matrix; or an attacking run and a ``benchmark evaluate`` of its saved set on new targets. The
runs must agree on the dataset and its images, on every model they share (config, checkpoint, mode)
and every attack they share (settings); a record present in several runs (a target's clean record)
must be identical in all of them. The joined run must be complete (every target under every source,
attack and seed) and may not mix adversarial formats; its intervals, summaries and comparisons are
derived again from the joined image records, so they are exactly those of one run over all of it.

:func:`join_shards` joins the other way: the N shard results of one job array (``data.shard K/N``),
each the same run on a disjoint part of the images, into the result of the whole job, identical to
the one an unsharded run writes (same records in the same order, same metrics and intervals from the
same bootstrap draws) except for its timings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from benchmark.errors import ResultError
from benchmark.results.intervals import derive, perturbation_summaries
from benchmark.results.schema import CLEAN, ModelInfo, RunResult, Timings, image_record_order, key_text


def _comparable(result: RunResult) -> tuple:
    d = result.dataset
    return (d.name, d.split, d.num_images, d.split_size, d.image_limit, d.input_policy, d.class_names, d.ignore_index)


def join_results(results: Sequence[RunResult], files: Sequence[str]) -> RunResult:
    """One RunResult holding every record of ``results`` (see the module docstring)."""
    if not results:
        raise ResultError("summarize needs at least one result file")
    first = results[0]
    images: dict[tuple, object] = {}
    perturbations: dict[tuple, object] = {}
    models: dict[str, ModelInfo] = {}
    attacks, sources, seeds = {}, {}, []
    for result, file in zip(results, files):
        if _comparable(result) != _comparable(first) or result.intervals != first.intervals:
            raise ResultError(f"{file}: another dataset, image set or interval setting than {files[0]}; not joinable")
        if result.adv_format != first.adv_format:
            raise ResultError(f"{file} transferred {result.adv_format} images, {files[0]} {first.adv_format}: "
                              "not comparable (attack with attack.adv_format png_uint8 to evaluate saved sets)")
        for m in result.models:
            seen = models.get(m.name)
            if seen is not None and (seen.config, seen.checkpoint_sha256, seen.inference_mode) != \
                    (m.config, m.checkpoint_sha256, m.inference_mode):
                raise ResultError(f"{file}: model {m.name!r} differs from the other runs' (checkpoint, config or mode)")
            roles = set(seen.roles if seen else ()) | set(m.roles)
            models[m.name] = dataclasses.replace(m, roles=tuple(r for r in ("source", "target") if r in roles))
        for a in result.attacks:
            if attacks.setdefault(a.name, a) != a:
                raise ResultError(f"{file}: attack {a.name!r} has other settings than in the other runs")
        for s in result.sources:
            sources.setdefault(s.id, s)
        seeds += [seed for seed in result.seeds if seed not in seeds]
        for record in result.perturbations:
            key = (record.image, record.source, record.condition, record.seed)
            if perturbations.setdefault(key, record) != record:
                raise ResultError(f"{file}: the perturbation of {record.image} by {record.source}/{record.condition} "
                                  "differs from another run's")
        for record in result.images:
            key = (record.image, *record.key)
            if images.setdefault(key, record) != record:
                raise ResultError(f"{file}: {record.image}/{key_text(record.key)} differs from another run's "
                                  "record of the same image and condition")
    targets = [name for name, m in models.items() if "target" in m.roles]
    wanted = {(t, s, a, seed) for t in targets for s in sources for a in attacks for seed in seeds}
    have = {key[1:] for key in images if key[3] != CLEAN}
    missing = sorted(wanted - have)
    if missing:
        raise ResultError(f"the joined runs are not a complete matrix: {len(missing)} conditions have no records, "
                          f"e.g. {key_text(missing[0])}")
    records = tuple(sorted(images.values(), key=lambda r: (r.image, r.target, r.source or "", r.condition, r.seed or 0)))
    metrics, summaries, comparisons = derive(records, targets=targets, sources=list(sources), attacks=list(attacks),
                                             seeds=seeds, num_classes=len(first.dataset.class_names),
                                             intervals=first.intervals)
    wall = sum(r.timings.wall_s for r in results)
    moved = tuple(sorted(perturbations.values(), key=lambda r: (r.image, r.source, r.condition, r.seed)))
    return dataclasses.replace(
        first, models=tuple(models.values()), sources=tuple(sources.values()), attacks=tuple(attacks.values()),
        seeds=tuple(seeds), provenance=None, metrics=metrics, summaries=summaries, comparisons=comparisons,
        perturbation_summaries=perturbation_summaries(moved, list(sources), list(attacks)), perturbations=moved,
        images=records, timings=Timings(wall_s=round(wall, 3), images_per_s=round(first.dataset.num_images / max(wall, 1e-9), 4)))


_SHARED = ("dataset", "models", "sources", "attacks", "seeds", "adv_format", "intervals", "provenance", "versions",
           "numerics")


def _shard_invariant(result: RunResult) -> dict:
    """What every shard of one job shares: the result's fields but its images, numbers and timings."""
    shared = {name: getattr(result, name) for name in _SHARED}
    shared["dataset"] = dataclasses.replace(result.dataset, num_images=0, shard=None)
    return shared


def join_shards(results: Sequence[RunResult], files: Sequence[str]) -> RunResult:
    """The whole job from its N shard results (see the module docstring). ResultError, in one line, for
    a file that is not a shard, shards of different jobs or settings, a missing or repeated shard, or
    shards that share an image."""
    if not results:
        raise ResultError("summarize needs at least one result file")
    for result, file in zip(results, files):
        if result.dataset.shard is None:
            raise ResultError(f"{file} is not a shard result (data.shard); shards and whole runs do not join")
    first, first_file = results[0], files[0]
    shard = first.dataset.shard
    by_index: dict[int, str] = {}
    base = _shard_invariant(first)
    for result, file in zip(results, files):
        other = result.dataset.shard
        if (other.count, other.job_images) != (shard.count, shard.job_images):
            raise ResultError(f"{file} is shard {other.text} of a job of {other.job_images} images, {first_file} "
                              f"shard {shard.text} of a job of {shard.job_images}: not one job")
        if other.index in by_index:
            raise ResultError(f"shard {other.text} is given twice: {by_index[other.index]} and {file}")
        by_index[other.index] = file
        differs = [name for name, value in _shard_invariant(result).items() if value != base[name]]
        if differs:
            raise ResultError(f"{file} and {first_file} differ in their {differs[0]}; the shards of one job run "
                              "the same configuration, versions and numerics (one kind of device)")
    missing = [f"{k}/{shard.count}" for k in range(shard.count) if k not in by_index]
    if missing:
        raise ResultError(f"{len(missing)} of {shard.count} shards are missing: {', '.join(missing)} "
                          f"(given: {', '.join(sorted(f'{k}/{shard.count}' for k in by_index))})")
    owner: dict[str, str] = {}
    for result, file in zip(results, files):
        for name in {r.image for r in result.images}:
            if name in owner:
                raise ResultError(f"image {name!r} is in two shards: {owner[name]} and {file}")
            owner[name] = file
    attacked = [key[1:] for key in first.condition_keys() if key[0] == first.targets[0] and key[2] != CLEAN]
    images = tuple(sorted((r for result in results for r in result.images),
                          key=image_record_order(first.targets, attacked)))
    perturbations = tuple(sorted((r for result in results for r in result.perturbations),
                                 key=lambda r: (r.image, r.source, r.condition, r.seed)))
    sources, attacks = [s.id for s in first.sources], [a.name for a in first.attacks]
    metrics, summaries, comparisons = derive(images, targets=list(first.targets), sources=sources, attacks=attacks,
                                             seeds=list(first.seeds), num_classes=len(first.dataset.class_names),
                                             intervals=first.intervals)
    wall = sum(r.timings.wall_s for r in results)
    return dataclasses.replace(
        first, dataset=dataclasses.replace(first.dataset, num_images=shard.job_images, shard=None),
        metrics=metrics, summaries=summaries, comparisons=comparisons,
        perturbation_summaries=perturbation_summaries(perturbations, sources, attacks), images=images,
        perturbations=perturbations,
        timings=Timings(wall_s=round(wall, 3), images_per_s=round(shard.job_images / max(wall, 1e-9), 4)))


SUMMARY_COLUMNS = ("run", "dataset", "split", "images", "source", "target", "white_box", "condition", "seeds",
                   "miou", "miou_ci_low", "miou_ci_high", "miou_std", "macc", "aacc", "success_rate")


def summary_rows(results: Sequence[RunResult], names: Sequence[str]) -> list[dict]:
    """One row per (run, source, target, condition) across runs of any datasets (SSAT's cross-run
    summary): mIoU with interval and seed spread, mAcc, aAcc and success rate (seed means; fractions)."""
    rows = []
    for result, name in zip(results, names):
        base = {"run": name, "dataset": result.dataset.name, "split": result.dataset.split,
                "images": result.dataset.num_images}
        for target in result.targets:
            clean = result.metric(target, CLEAN)
            rows.append({**base, "source": "", "target": target, "white_box": "", "condition": CLEAN, "seeds": "",
                         "miou": clean.miou, "miou_ci_low": clean.miou_ci[0], "miou_ci_high": clean.miou_ci[1],
                         "miou_std": None, "macc": clean.macc, "aacc": clean.pixel_accuracy, "success_rate": None})
            for s in (r for r in result.summaries if r.target == target):
                per_seed = [result.metric(target, s.condition, s.source, seed) for seed in result.seeds]
                rows.append({**base, "source": s.source, "target": target,
                             "white_box": result.is_white_box(target, s.source), "condition": s.condition,
                             "seeds": " ".join(map(str, s.seeds)), "miou": s.miou_mean, "miou_ci_low": s.miou_ci[0],
                             "miou_ci_high": s.miou_ci[1], "miou_std": s.miou_std,
                             "macc": sum(m.macc for m in per_seed) / len(per_seed),
                             "aacc": sum(m.pixel_accuracy for m in per_seed) / len(per_seed),
                             "success_rate": s.success_rate_mean})
    return rows
