"""Send one run's results to the Lightning loggers (rank 0 only; called by the results writer).

A CSV logger gets the final numbers as one row of scalars. A W&B run gets them where W&B users look:

- the **summary**: per target the clean mIoU / mAcc / aAcc, and per (source, attack) the black-box mean
  and white-box mIoU, each target's mIoU with its interval, and the success rates;
- **tables**: mIoU with intervals and seed spread per (target, source, attack), the attack comparisons,
  the achieved perturbations and per-class IoU / Acc;
- the **heatmaps**, and **example panels**: uint8 RGB images with the clean / adversarial prediction and
  the ground truth as masks, one key per target and at most :data:`IMAGES_PER_KEY` images per key
  (W&B shows no more than 108 per key);
- an **artifact** ``results-<run id>`` (versioned by W&B) holding results.json, results.md,
  per_class_metrics.csv, config.yaml and, when saved, the adversarial PNGs with their manifest.

The run's configuration is its W&B config (passed when the logger is made, :mod:`benchmark.lightning.cli`).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.loggers import Logger, WandbLogger

from benchmark.results import CLEAN, RunResult

IMAGES_PER_KEY = 100
ARTIFACT_FILES = ("results.json", "results.md", "per_class_metrics.csv", "config.yaml")


class BackgroundWandbLogger(WandbLogger):
    """:class:`WandbLogger` whose run starts in a thread, beside the first attack.

    ``wandb.init`` takes one to two seconds of mostly Python work (its imports, W&B's service
    process). The results writer calls :meth:`start_run` once the first batch is attacked, so it
    overlaps the targets' evaluation and the next attack (torch's kernels leave the interpreter free)
    instead of delaying model building and the first attack, or competing with them for the
    interpreter. Until the run exists :attr:`experiment` is a stand-in that waits for it on first use
    (Lightning only touches the property at set-up); :meth:`wait_for_run` waits and raises, in the
    calling thread, an error the start met (the results writer calls it after the second batch and
    before logging, so a broken W&B set-up stops the run early, not at its end). Lightning's
    hyperparameter call with nothing to log (the module saves none; the run's configuration is its W&B
    config) does not wait."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._start_error: BaseException | None = None
        self._starting = threading.Thread(target=self._start_run, name="wandb-init", daemon=True)

    def start_run(self) -> None:
        """Start ``wandb.init`` in the background (once)."""
        if self._starting.ident is None:
            self._starting.start()

    def _start_run(self) -> None:
        try:
            WandbLogger.experiment.fget(self)  # rank zero: wandb.init; other ranks: a dummy
        except BaseException as err:  # re-raised in the main thread by wait_for_run
            self._start_error = err

    def wait_for_run(self):
        """The W&B run (a dummy on other ranks), once started; the start's error, if it failed."""
        self.start_run()
        self._starting.join()
        if self._start_error is not None:
            error, self._start_error = self._start_error, None
            raise error
        return WandbLogger.experiment.fget(self)

    @property
    def experiment(self):
        done = self._starting.ident is not None and not self._starting.is_alive()
        return self.wait_for_run() if done else _PendingRun(self)

    def log_hyperparams(self, params) -> None:
        if params:
            super().log_hyperparams(params)

    def finalize(self, status: str) -> None:
        """Close the run: a start still in flight (a run stopped during its first batches) ends first."""
        if self._starting.ident is not None:
            self._starting.join()
        super().finalize(status)


class _PendingRun:
    """The W&B run while it starts: any attribute waits for it (:meth:`BackgroundWandbLogger.wait_for_run`)."""

    def __init__(self, logger: BackgroundWandbLogger) -> None:
        object.__setattr__(self, "_logger", logger)

    def __getattr__(self, name: str):
        return getattr(self._logger.wait_for_run(), name)

    def __setattr__(self, name: str, value) -> None:
        setattr(self._logger.wait_for_run(), name, value)


def scalars(result: RunResult) -> dict[str, float]:
    """Flat final numbers: clean per target and per (target, source, attack) seed means."""
    out = {}
    for target in result.targets:
        clean = result.metric(target, CLEAN)
        out[f"miou/{target}/{CLEAN}"] = clean.miou
        out[f"macc/{target}/{CLEAN}"] = clean.macc
        out[f"aacc/{target}/{CLEAN}"] = clean.pixel_accuracy
    for s in result.summaries:
        key = f"{s.target}/{s.source}/{s.condition}"
        out[f"miou/{key}"] = s.miou_mean
        out[f"miou_ci_low/{key}"], out[f"miou_ci_high/{key}"] = s.miou_ci
        if s.success_rate_mean is not None:
            out[f"success_rate/{key}"] = s.success_rate_mean
    return out


def ranking_summary(result: RunResult) -> dict[str, float]:
    """Per (source, attack): the black-box mean and white-box mIoU (the leaderboard's columns)."""
    out = {}
    for source in result.source_ids:
        for attack in result.attack_names:
            black = [result.summary(t, attack, source).miou_mean for t in result.targets
                     if not result.is_white_box(t, source)]
            white = [result.summary(t, attack, source).miou_mean for t in result.targets
                     if result.is_white_box(t, source)]
            if black:
                out[f"blackbox_mean_miou/{source}/{attack}"] = sum(black) / len(black)
            if white:
                out[f"whitebox_miou/{source}/{attack}"] = sum(white) / len(white)
    return out


def log_run(loggers: list[Logger], result: RunResult, examples: list[dict], heatmaps: list[Path],
            out_dir: Path) -> Path | None:
    """Log to every logger; return the W&B run directory, if a W&B logger took part."""
    wandb_dir = None
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            wandb_dir = _log_wandb(logger, result, examples, heatmaps, out_dir)
        else:
            logger.log_metrics(scalars(result), step=0)
        logger.save()
    return wandb_dir


def _percent(value):
    return None if value is None else 100 * value


def _log_wandb(logger: WandbLogger, result: RunResult, examples: list[dict], heatmaps: list[Path],
               out_dir: Path) -> Path:
    import wandb

    run = logger.experiment
    run.summary.update({**scalars(result), **ranking_summary(result)})
    rows = [[t, "", CLEAN, "", 100 * m.miou, None, 100 * m.miou_ci[0], 100 * m.miou_ci[1], 100 * m.macc,
             100 * m.pixel_accuracy, None, False] for t in result.targets for m in [result.metric(t, CLEAN)]]
    rows += [[s.target, s.source, s.condition, ",".join(map(str, s.seeds)), 100 * s.miou_mean, _percent(s.miou_std),
              100 * s.miou_ci[0], 100 * s.miou_ci[1], None, None, _percent(s.success_rate_mean),
              result.is_white_box(s.target, s.source)] for s in result.summaries]
    logger.log_table("results/miou_percent", data=rows, columns=[
        "target", "source", "condition", "seeds", "miou", "std", "ci_low", "ci_high", "macc", "aacc",
        "success_rate", "white_box"])
    logger.log_table("results/comparisons_points", data=[
        [c.target, c.source, c.first, c.second, 100 * c.difference, 100 * c.ci[0], 100 * c.ci[1], c.distinguishable]
        for c in result.comparisons],
        columns=["target", "source", "first", "second", "difference", "ci_low", "ci_high", "distinguishable"])
    if result.perturbation_summaries:
        logger.log_table("results/perturbation", data=[
            [p.source, p.condition, p.mean_linf_255, p.max_linf_255, p.mean_l2] for p in result.perturbation_summaries],
            columns=["source", "attack", "mean_linf_255", "max_linf_255", "mean_l2"])
    classes = list(result.dataset.class_names)
    for target in result.targets:
        data = [[CLEAN if m.condition == CLEAN else f"{m.source}/{m.condition}@{m.seed}",
                 *map(_percent, m.per_class_iou), *map(_percent, m.per_class_acc)]
                for m in result.metrics if m.target == target]
        logger.log_table(f"per_class/{target}", data=data,
                         columns=["condition", *(f"IoU {c}" for c in classes), *(f"Acc {c}" for c in classes)])
    run.log({f"results/{path.stem}": wandb.Image(str(path)) for path in heatmaps})
    _log_examples(run, result, examples)
    _log_artifact(run, out_dir)
    folder = Path(run.dir).parent
    run.finish()  # now, not at exit: the results writer removes the journal only after W&B has it all
    return folder


def to_uint8(image) -> np.ndarray:
    """A float (3, H, W) image in [0, 1] as uint8 (H, W, 3): W&B casts floats without rescaling."""
    return (image.float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def _log_examples(run, result: RunResult, examples: list[dict]) -> None:
    import wandb

    labels = {**dict(enumerate(result.dataset.class_names)), result.dataset.ignore_index: "ignore"}
    per_target: dict[str, list] = {}
    for example in examples:
        for (target, condition), pred in example["preds"].items():
            pixels = example["image"] if condition == CLEAN else example["adv"][condition]
            name = CLEAN if condition == CLEAN else f"{condition.source}/{condition.attack}@{condition.seed}"
            masks = {"prediction": {"mask_data": pred.numpy(), "class_labels": labels},
                     "ground_truth": {"mask_data": example["label"].numpy(), "class_labels": labels}}
            per_target.setdefault(target, []).append(
                wandb.Image(to_uint8(pixels), masks=masks, caption=f"{example['name']} | {target} | {name}"))
    for target, images in per_target.items():
        for part, start in enumerate(range(0, len(images), IMAGES_PER_KEY)):
            key = f"examples/{target}" + (f"/part{part}" if len(images) > IMAGES_PER_KEY else "")
            run.log({key: images[start:start + IMAGES_PER_KEY]})


def _log_artifact(run, out_dir: Path) -> None:
    import wandb

    artifact = wandb.Artifact(f"results-{run.id}", type="benchmark-results",
                              description="results.json, reports, configuration and saved adversarial images")
    for name in ARTIFACT_FILES:
        if (out_dir / name).is_file():
            artifact.add_file(str(out_dir / name))
    if (out_dir / "adv" / "manifest.json").is_file():
        artifact.add_dir(str(out_dir / "adv"), name="adv")
    run.log_artifact(artifact)
