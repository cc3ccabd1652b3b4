"""Send one run's results to the Lightning loggers (rank 0 only; called by the results writer).

Every logger gets the scalars ``miou/<target>/clean`` and, per attack, ``miou/<target>/<source>/<attack>``
(the seed mean) with ``miou_ci_low/...`` and ``miou_ci_high/...``, and likewise ``success_rate/...``.
A W&B logger also gets the transfer table with intervals, the attack comparisons, per-class IoU
tables, the heatmaps and a few example images with clean and adversarial predictions as mask overlays.
"""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.loggers import Logger, WandbLogger

from benchmark.results import CLEAN, RunResult


def scalars(result: RunResult) -> dict[str, float]:
    out = {}
    for target in result.targets:
        clean = result.metric(target, CLEAN)
        out[f"miou/{target}/{CLEAN}"] = clean.miou
        out[f"miou_ci_low/{target}/{CLEAN}"], out[f"miou_ci_high/{target}/{CLEAN}"] = clean.miou_ci
        out[f"pixel_accuracy/{target}/{CLEAN}"] = clean.pixel_accuracy
    for s in result.summaries:
        key = f"{s.target}/{s.source}/{s.condition}"
        out[f"miou/{key}"] = s.miou_mean
        out[f"miou_ci_low/{key}"], out[f"miou_ci_high/{key}"] = s.miou_ci
        if s.success_rate_mean is not None:
            out[f"success_rate/{key}"] = s.success_rate_mean
    return out


def log_run(loggers: list[Logger], result: RunResult, examples: list[dict], heatmaps: list[Path]) -> None:
    for logger in loggers:
        logger.log_metrics(scalars(result), step=0)
        if isinstance(logger, WandbLogger):
            _log_wandb(logger, result, examples, heatmaps)
        logger.save()


def _log_wandb(logger: WandbLogger, result: RunResult, examples: list[dict], heatmaps: list[Path]) -> None:
    import wandb

    rows = [[t, "", CLEAN, "", 100 * m.miou, None, 100 * m.miou_ci[0], 100 * m.miou_ci[1], False]
            for t in result.targets for m in [result.metric(t, CLEAN)]]
    rows += [[s.target, s.source, s.condition, ",".join(map(str, s.seeds)), 100 * s.miou_mean,
              None if s.miou_std is None else 100 * s.miou_std, 100 * s.miou_ci[0], 100 * s.miou_ci[1],
              result.is_white_box(s.target, s.source)] for s in result.summaries]
    logger.log_table("results/miou_percent", data=rows,
                     columns=["target", "source", "condition", "seeds", "miou", "std", "ci_low", "ci_high", "white_box"])
    logger.log_table("results/comparisons_points", data=[
        [c.target, c.source, c.first, c.second, 100 * c.difference, 100 * c.ci[0], 100 * c.ci[1], c.distinguishable]
        for c in result.comparisons],
        columns=["target", "source", "first", "second", "difference", "ci_low", "ci_high", "distinguishable"])
    classes = list(result.dataset.class_names)
    for target in result.targets:
        data = [[CLEAN, *(None if v is None else 100 * v for v in result.metric(target, CLEAN).per_class_iou)]]
        data += [[f"{m.source}/{m.condition}@{m.seed}", *(None if v is None else 100 * v for v in m.per_class_iou)]
                 for m in result.metrics if m.target == target and m.condition != CLEAN]
        logger.log_table(f"per_class_iou/{target}", columns=["condition", *classes], data=data)
    logger.experiment.log({f"results/{path.stem}": wandb.Image(str(path)) for path in heatmaps})
    labels = {**dict(enumerate(classes)), result.dataset.ignore_index: "ignore"}
    images = []
    for example in examples:
        for (target, condition), pred in example["preds"].items():
            pixels = example["image"] if condition == CLEAN else example["adv"][condition]
            name = CLEAN if condition == CLEAN else f"{condition.source}/{condition.attack}@{condition.seed}"
            masks = {"prediction": {"mask_data": pred.numpy(), "class_labels": labels},
                     "ground_truth": {"mask_data": example["label"].numpy(), "class_labels": labels}}
            images.append(wandb.Image(pixels.permute(1, 2, 0).numpy(), masks=masks,
                                      caption=f"{example['name']} | {target} | {name}"))
    if images:
        logger.experiment.log({"examples": images})
