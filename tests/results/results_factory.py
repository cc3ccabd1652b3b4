"""Builds fixture RunResults in code (no files from the code under test); used by conftest and tests.

Image counts are constructed so that each (target, condition) has a known dataset-level mIoU ``v``:
image 0 holds n = round(v * 10**6) of 10**6 labelled pixels of classes 0 and 2, all predicted
correctly, and class 1 is absent; the other images hold no pixel. Metrics, summaries and comparisons
are derived from those counts by the code under test; tests check them against ``v``.
"""

from __future__ import annotations

from benchmark.results import (
    CLEAN,
    SCHEMA_VERSION,
    AttackInfo,
    DatasetInfo,
    ImageRecord,
    IntervalInfo,
    ModelInfo,
    NumericsInfo,
    PerturbationRecord,
    RunResult,
    SourceInfo,
    Timings,
    Versions,
)
from benchmark.results.intervals import derive, perturbation_summaries

SHA = {name: (f"{i:x}" * 64)[:64] for i, name in enumerate(["src", "t1", "t2", "t3", "src2"], start=1)}


def settings_for(name: str, eps=8 / 255, steps=20, alpha=2 / 255, **extra) -> dict:
    base = {"eps": eps, "alpha": alpha, "steps": steps, "random_start": True, "ignore_index": 255,
            "step_schedule": "constant", "loss_normalizer": "valid"}
    if name.startswith("transegpgd"):
        base.update(stage1_steps=steps // 2, beta=0.5)
    base.update(extra)
    return base


def default_miou(target_index: int, condition_index: int) -> float:
    return 0.70 + 0.01 * target_index if condition_index == 0 else 0.05 * condition_index + 0.01 * target_index


def build_result(*, source=("src",), ensemble=None, targets=("src", "t1", "t2"), sources=None,
                 attacks=("pgd", "transegpgd"), miou=None, seed=0, seeds=None, num_images=4, split_size=4,
                 image_limit=None, settings=None, sha=None, resamples=200) -> RunResult:
    """``miou``: {(target, condition): fraction} (every source and seed alike); unspecified cells get
    distinct default values. ``sources``: list of model-name tuples (default: the one ``source``)."""
    miou = dict(miou or {})
    sources = [tuple(s) for s in (sources or [source])]
    infos = tuple(SourceInfo(models=s, ensemble=(ensemble or "logits") if len(s) > 1 else None) for s in sources)
    seeds = tuple(seeds or (seed,))
    source_models = {n for s in sources for n in s}
    names = list(dict.fromkeys([*(n for s in sources for n in s), *targets]))
    models = tuple(
        ModelInfo(name=n,
                  roles=tuple(r for r, on in (("source", n in source_models), ("target", n in targets)) if on),
                  config=f"configs/models/{n}.py", checkpoint_sha256=(sha or SHA).get(n, SHA["t3"]),
                  inference_mode="whole")
        for n in names)
    attack_infos = tuple(AttackInfo.from_settings(a, (settings or {}).get(a, settings_for(a)))
                         for a in attacks)
    images = []
    for ti, t in enumerate(targets):
        clean_n = round(miou.get((t, CLEAN), default_miou(ti, 0)) * 10**6)
        keys = [(None, CLEAN, None, 0), *((s.id, a, sd, ci) for s in infos
                                          for ci, a in enumerate(attacks, start=1) for sd in seeds)]
        for src, c, sd, ci in keys:
            n = round(miou.get((t, c), default_miou(ti, ci)) * 10**6)
            for i in range(num_images):
                counts = ((0, 2), (n, n), (n, n), (10**6, 10**6)) if i == 0 else ((), (), (), ())
                fooled = None if c == CLEAN else (clean_n if i == 0 else 0)
                images.append(ImageRecord(f"img{i}", t, src, c, sd, *counts, fooled=fooled))
    dataset = DatasetInfo(name="voc2012", split="val", num_images=num_images, split_size=split_size,
                          image_limit=image_limit, input_policy="whole image, original size",
                          class_names=("background", "aeroplane", "bicycle"), ignore_index=255, batch_size=1)
    intervals = IntervalInfo.default(resamples=resamples)
    metrics, summaries, comparisons = derive(images, targets=targets, sources=[s.id for s in infos],
                                             attacks=attacks, seeds=seeds, num_classes=3, intervals=intervals)
    # every attack moves every pixel of image i by (i + 1)/255 in L-inf, with an L2 of 0.5 (i + 1)
    perturbations = tuple(PerturbationRecord(f"img{i}", s.id, a, sd, (i + 1) / 255, 0.5 * (i + 1))
                          for i in range(num_images) for s in infos for a in attacks for sd in seeds)
    return RunResult(
        schema_version=SCHEMA_VERSION, dataset=dataset, models=models, sources=infos, attacks=attack_infos,
        seeds=seeds, adv_format="float", intervals=intervals, provenance=None,
        versions=Versions(python="3.11.9", torch="2.13.0", torchmetrics="1.9.0", lightning="2.6.6",
                          mmseg="1.2.2", benchmark="0.1.0"),
        numerics=NumericsInfo(device="cpu", device_name="Test CPU", threads=1, autocast=None, deterministic=False,
                              cudnn_benchmark=False, tf32=False),
        timings=Timings(wall_s=12.5, images_per_s=0.32),
        metrics=metrics, summaries=summaries, comparisons=comparisons,
        perturbation_summaries=perturbation_summaries(perturbations, [s.id for s in infos], attacks),
        images=tuple(images), perturbations=perturbations,
    )
