"""Send one run's results to the Lightning loggers (rank 0 only; called by the results writer).

Every logger gets the scalars ``miou/<target>/<condition>``, ``pixel_accuracy/...`` and
``success_rate/...``. A W&B logger also gets the transfer table, per-class IoU tables, the heatmap and
a few example images with clean and adversarial predictions as mask overlays.
"""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.loggers import Logger, WandbLogger

from benchmark.results import CLEAN, RunResult


def scalars(result: RunResult) -> dict[str, float]:
    out = {}
    for record in result.metrics:
        key = f"{record.target}/{record.condition}"
        out[f"miou/{key}"] = record.miou
        out[f"pixel_accuracy/{key}"] = record.pixel_accuracy
        if record.success_rate is not None:
            out[f"success_rate/{key}"] = record.success_rate
    return out


def log_run(loggers: list[Logger], result: RunResult, examples: list[dict], heatmap: Path) -> None:
    for logger in loggers:
        logger.log_metrics(scalars(result), step=0)
        if isinstance(logger, WandbLogger):
            _log_wandb(logger, result, examples, heatmap)
        logger.save()


def _log_wandb(logger: WandbLogger, result: RunResult, examples: list[dict], heatmap: Path) -> None:
    import wandb

    targets = result.targets
    conditions = [CLEAN, *(a.name for a in result.attacks)]
    rows = [[c, *(100 * result.metric(t, c).miou for t in targets)] for c in conditions]
    logger.log_table("results/miou_percent", columns=["condition", *targets], data=rows)
    classes = list(result.dataset.class_names)
    for target in targets:
        data = [[c, *(None if v is None else 100 * v for v in result.metric(target, c).per_class_iou)]
                for c in conditions]
        logger.log_table(f"per_class_iou/{target}", columns=["condition", *classes], data=data)
    logger.experiment.log({"results/heatmap": wandb.Image(str(heatmap))})
    labels = {**dict(enumerate(classes)), result.dataset.ignore_index: "ignore"}
    images = []
    for example in examples:
        for target in targets:
            for condition in conditions:
                pixels = example["image"] if condition == CLEAN else example["adv"][condition]
                masks = {"prediction": {"mask_data": example["preds"][(target, condition)].numpy(),
                                        "class_labels": labels},
                         "ground_truth": {"mask_data": example["label"].numpy(), "class_labels": labels}}
                images.append(wandb.Image(pixels.permute(1, 2, 0).numpy(), masks=masks,
                                          caption=f"{example['name']} | {target} | {condition}"))
    if images:
        logger.experiment.log({"examples": images})
