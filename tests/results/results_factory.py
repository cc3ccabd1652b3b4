"""Builds fixture RunResults in code (no files from the code under test); used by conftest and tests."""

from __future__ import annotations

from benchmark.results import (
    CLEAN,
    SCHEMA_VERSION,
    AttackInfo,
    DatasetInfo,
    ImageRecord,
    MetricRecord,
    ModelInfo,
    RunResult,
    SourceInfo,
    Timings,
    Versions,
)

SHA = {name: (f"{i:x}" * 64)[:64] for i, name in enumerate(["src", "t1", "t2", "t3", "src2"], start=1)}


def settings_for(name: str, eps=8 / 255, steps=20, alpha=2 / 255, **extra) -> dict:
    base = {"eps": eps, "alpha": alpha, "steps": steps, "random_start": True, "ignore_index": 255,
            "step_schedule": "constant", "loss_normalizer": "valid"}
    if name.startswith("transegpgd"):
        base.update(stage1_steps=steps // 2, beta=0.5)
    base.update(extra)
    return base


def build_result(*, source=("src",), ensemble=None, targets=("src", "t1", "t2"),
                 attacks=("pgd", "transegpgd"), miou=None, seed=0, num_images=4, split_size=4,
                 image_limit=None, settings=None, sha=None) -> RunResult:
    """``miou``: {(target, condition): fraction}; unspecified cells get distinct default values."""
    miou = dict(miou or {})
    names = list(dict.fromkeys([*source, *targets]))
    models = tuple(
        ModelInfo(name=n,
                  roles=tuple(r for r, on in (("source", n in source), ("target", n in targets)) if on),
                  config=f"configs/models/{n}.py", checkpoint_sha256=(sha or SHA).get(n, SHA["t3"]),
                  inference_mode="whole")
        for n in names)
    attack_infos = tuple(AttackInfo.from_settings(a, (settings or {}).get(a, settings_for(a)))
                         for a in attacks)
    records, images = [], []
    for ti, t in enumerate(targets):
        for ci, c in enumerate((CLEAN, *attacks)):
            v = miou.get((t, c), 0.70 + 0.01 * ti if c == CLEAN else 0.05 * ci + 0.01 * ti)
            # per-image counts whose dataset-level IoU is exactly v for classes 0 and 2 (class 1 absent):
            # image 0 holds n of 10**6 labelled pixels of each class, all predicted correctly
            n = round(v * 10**6)
            clean_n = round(miou.get((t, CLEAN), 0.70 + 0.01 * ti) * 10**6)
            for i in range(num_images):
                counts = ((0, 2), (n, n), (n, n), (10**6, 10**6)) if i == 0 else ((), (), (), ())
                fooled = None if c == CLEAN else (clean_n if i == 0 else 0)
                images.append(ImageRecord(f"img{i}", t, c, *counts, fooled=fooled))
            records.append(MetricRecord(target=t, condition=c, miou=n / 10**6, per_class_iou=(n / 10**6, None, n / 10**6),
                                        pixel_accuracy=(n + n) / (2 * 10**6),
                                        success_rate=None if c == CLEAN else clean_n / (2 * clean_n),
                                        num_images=num_images))
    return RunResult(
        schema_version=SCHEMA_VERSION,
        dataset=DatasetInfo(name="voc2012", split="val", num_images=num_images, split_size=split_size,
                            image_limit=image_limit, input_policy="whole image, original size",
                            class_names=("background", "aeroplane", "bicycle"), ignore_index=255,
                            batch_size=1),
        models=models,
        source=SourceInfo(models=tuple(source), ensemble=ensemble),
        attacks=attack_infos,
        seed=seed,
        adv_format="float",
        versions=Versions(python="3.11.9", torch="2.13.0", torchmetrics="1.9.0", lightning="2.6.6",
                          mmseg="1.2.2", benchmark="0.1.0"),
        timings=Timings(wall_s=12.5, images_per_s=0.32),
        metrics=tuple(records),
        images=tuple(images),
    )
