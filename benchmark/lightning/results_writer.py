"""The results writer: at the end of validation, build ``RunResult`` and write and log it (rank 0)."""

from __future__ import annotations

import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from PIL import Image

from benchmark.errors import ResultError
from benchmark.lightning import ADV_KEY
from benchmark.lightning.attack_callback import AttackCallback, quantise
from benchmark.lightning.logging import log_run
from benchmark.lightning.module import CLEAN
from benchmark.results import (AttackInfo, DatasetInfo, MetricRecord, ModelInfo, RunResult, SourceInfo, Timings,
                               Versions, results_heatmap, results_markdown, write_result)
from benchmark.results.audit import check_consistency
from benchmark.results.schema import SCHEMA_VERSION


class ResultsWriter(pl.Callback):
    """Write ``results.json`` (atomic), ``results.md`` and ``heatmap.png`` into ``out_dir``.

    Args:
        out_dir: the run directory.
        num_logged_images: example images (clean/adversarial predictions as mask overlays) sent to W&B.
        quiet: do not print the table at the end.
        save_adv: also write every image as a lossless 8-bit PNG, ``adv/clean/<name>.png`` and
            ``adv/<attack>/<name>.png``, quantised inside the budget (``attack_callback.quantise``);
            each rank writes its own images.
    """

    def __init__(self, out_dir: str = "runs/default", num_logged_images: int = 4, quiet: bool = False,
                 save_adv: bool = False):
        super().__init__()
        self.out_dir = Path(out_dir)
        self.num_logged_images, self.quiet, self.save_adv = num_logged_images, quiet, save_adv
        self.result: RunResult | None = None
        self._start = 0.0
        self._examples: list[dict] = []

    def on_validation_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()
        self._examples = []

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self.save_adv:
            self._save_pngs(trainer, batch)
        if not trainer.is_global_zero or len(self._examples) >= self.num_logged_images:
            return
        for index in range(min(outputs["num_examples"], self.num_logged_images - len(self._examples))):
            self._examples.append({
                "name": batch["name"][index],
                "image": batch["image"][index].cpu(),
                "label": batch["label"][index].cpu(),
                "adv": {k: v[index].cpu() for k, v in batch["adv"].items()},
                "preds": {key: pred[index].cpu() for key, pred in outputs["examples"].items()},
            })

    def _save_pngs(self, trainer, batch) -> None:
        attack_cb = next(cb for cb in trainer.callbacks if isinstance(cb, AttackCallback))
        images = {CLEAN: batch["image"]}
        for name, adv in batch[ADV_KEY].items():
            images[name] = quantise(batch["image"], adv, attack_cb.attacks[name].settings.base.eps)
        for condition, tensor in images.items():
            folder = self.out_dir / "adv" / condition
            folder.mkdir(parents=True, exist_ok=True)
            pixels = (tensor.float() * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            for name, array in zip(batch["name"], pixels):
                Image.fromarray(array).save(folder / f"{name}.png", format="PNG")

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        scores = pl_module.compute_scores()  # collectives: every rank takes part
        images = pl_module.image_records()
        if trainer.sanity_checking:
            return
        wall = time.perf_counter() - self._start
        attack_cb = next(cb for cb in trainer.callbacks if isinstance(cb, AttackCallback))
        result = self._result(trainer.datamodule, pl_module, attack_cb, scores, images, wall)
        self.result = result
        if not trainer.is_global_zero:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_result(self.out_dir / "results.json", result)
        table = results_markdown(result)
        (self.out_dir / "results.md").write_text(table)
        results_heatmap(result, self.out_dir / "heatmap.png")
        log_run(trainer.loggers, result, self._examples, self.out_dir / "heatmap.png")
        if not self.quiet:
            print("\n" + table)
            print(f"results: {self.out_dir / 'results.json'}, {self.out_dir / 'results.md'}, "
                  f"{self.out_dir / 'heatmap.png'}  ({wall:.1f} s, {result.timings.images_per_s:.2f} images/s)")

    @staticmethod
    def _result(data, module, attack_cb: AttackCallback, scores, images, wall: float) -> RunResult:
        from benchmark.models.mmseg_adapter import library_versions

        num_images = scores[(module.target_names[0], CLEAN)][0].num_images
        expected = len(data.dataset)
        if num_images != expected:
            raise ResultError(f"{num_images} images were scored but the dataset has {expected}; "
                              "refusing to write an incomplete result")
        dataset = DatasetInfo(name=data.dataset_name, split=data.split, num_images=num_images,
                              split_size=data.split_size, image_limit=data.limit, input_policy=data.input_policy,
                              class_names=tuple(data.info.classes), ignore_index=data.ignore_index,
                              batch_size=data.batch_size)
        models = []
        for name in dict.fromkeys([*module.target_names, *module.source_names]):
            info = module.model_info(name)
            roles = tuple(r for r, names in (("source", module.source_names), ("target", module.target_names))
                          if name in names)
            models.append(ModelInfo(name=name, roles=roles, config=info["config"],
                                    checkpoint_sha256=info["checkpoint_sha256"], inference_mode=info["mode"]))
        attacks = tuple(AttackInfo.from_settings(name, attack.to_dict()) for name, attack in attack_cb.attacks.items())
        ensemble = attacks[0].settings.get("ensemble") if len(module.source_names) > 1 else None
        metrics = tuple(MetricRecord.from_scores(target, condition, s, success)
                        for (target, condition), (s, success) in scores.items())
        check_consistency(metrics, images, len(data.info.classes), "<this run>")  # torchmetrics == image records
        return RunResult(schema_version=SCHEMA_VERSION, dataset=dataset, models=tuple(models),
                         source=SourceInfo(models=tuple(module.source_names), ensemble=ensemble),
                         attacks=attacks, seed=attack_cb.seed, adv_format=attack_cb.adv_format,
                         versions=Versions.current(mmseg=library_versions()["mmseg"]),
                         timings=Timings(wall_s=round(wall, 3), images_per_s=round(num_images / max(wall, 1e-9), 4)),
                         metrics=metrics, images=images)
