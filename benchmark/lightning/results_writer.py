"""The results writer: journal each finished batch, and at the end of validation build ``RunResult``
from every per-image record (journalled and new) and write and log it (rank 0).

Resume: in ``setup`` the writer reads the run's journal (:mod:`benchmark.results.journal`), refuses
one of another configuration, and tells the data module which images are already done; only the
others are attacked. The end of a run is a function of the journal: when it already holds every image
(a run killed while writing its results, or ``benchmark finalize``) nothing is attacked and
:meth:`ResultsWriter.finish` derives and writes the result from it. Every file is written atomically,
and the journal is removed last, once results.json, the saved set's manifest, the reports and the W&B
run are complete: a kill at any moment leaves either the journal or the whole result."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from PIL import Image

from benchmark.errors import ResultError
from benchmark.fileio import write_atomic
from benchmark.lightning import ADV_KEY, AdvKey
from benchmark.lightning.attack_callback import AdversarialSource, quantise
from benchmark.lightning.logging import log_run
from benchmark.lightning.runlog import say
from benchmark.lightning.stopping import stop_if_requested
from benchmark.results import (CLEAN, DatasetInfo, IntervalInfo, ModelInfo, NumericsInfo, RunResult, Timings, Versions,
                               write_result)
from benchmark.results.adv_manifest import (MANIFEST_VERSION, AdvManifest, AttackBudget, SavedFile, budget_levels,
                                            condition_path, write_manifest)
from benchmark.results.audit import same_values
from benchmark.results.intervals import derive, perturbation_summaries, point_scores
from benchmark.results.journal import JournalState, JournalWriter, fingerprint, read_journals, remove_journals
from benchmark.results.report import per_class_table, write_reports
from benchmark.results.schema import SCHEMA_VERSION, ShardInfo, image_record_order


class ResultsWriter(pl.Callback):
    """Write ``results.json`` (atomic), ``results.md`` and ``heatmap.png`` into ``out_dir``.

    Args:
        out_dir: the run directory.
        num_logged_images: example images (clean/adversarial predictions as mask overlays) sent to W&B.
        quiet: do not print the table at the end.
        save_adv: also write every image as a lossless 8-bit PNG, ``adv/clean/<name>.png`` and
            ``adv/<source>/<attack>/seed<k>/<name>.png``, quantised inside the budget
            (``attack_callback.quantise``), and ``adv/manifest.json`` (every file's sha256, the attacks'
            settings, the source models, the dataset and images): a set ``benchmark evaluate`` reads.
            Each rank writes its own images; rank 0 the manifest.
        bootstrap_resamples: image resamples of the intervals (default 1000).
        bootstrap_seed: seed of the resampling (default 0).
        per_class: the per-class IoU / Acc table printed at the end: "compact" (each target, clean and
            the first source's attacks, first seed), "full" (every condition) or "none". The whole
            table is always in ``per_class_metrics.csv``.
    """

    finalize = False  # set by ``benchmark finalize``: refuse to attack, write the result of a complete journal

    def __init__(self, out_dir: str = "runs/default", num_logged_images: int = 4, quiet: bool = False,
                 save_adv: bool = False, bootstrap_resamples: int = 1000, bootstrap_seed: int = 0,
                 per_class: str = "compact"):
        super().__init__()
        if bootstrap_resamples < 1:
            raise ResultError(f"results.bootstrap_resamples must be >= 1, got {bootstrap_resamples}")
        if per_class not in ("compact", "full", "none"):
            raise ResultError(f"results.per_class must be compact, full or none, got {per_class!r}")
        self.per_class = per_class
        self.out_dir = Path(out_dir)
        self.num_logged_images, self.quiet, self.save_adv = num_logged_images, quiet, save_adv
        self.intervals = IntervalInfo.default(resamples=bootstrap_resamples, seed=bootstrap_seed)
        self.result: RunResult | None = None
        self._start = 0.0
        self._examples: list[dict] = []
        self._saved: list[SavedFile] = []
        self._journal: JournalWriter | None = None
        self._earlier = JournalState(frozenset(), (), (), (), 0)
        self.remaining: int | None = None  # images left to attack, known after setup
        self.run_config: dict | None = None  # the resolved configuration, set by the CLI (fingerprint)

    def setup(self, trainer, pl_module, stage: str) -> None:
        parts = fingerprint(self.fingerprint_parts(trainer, pl_module))
        self._earlier = read_journals(self.out_dir, parts, ignore=("numerics",) if self.finalize else ())
        trainer.datamodule.skip = self._earlier.images
        total = len(trainer.datamodule.dataset)
        self.remaining = total - len(self._earlier.images)
        if self.finalize and self.remaining:
            raise ResultError(f"{self.out_dir}: the journal holds {total - self.remaining} of {total} images; rerun "
                              f"the run's command to attack the other {self.remaining} (finalize writes the result "
                              "of a complete journal)")
        if 0 < self.remaining < trainer.world_size:  # a process without an image would leave DDP's collectives
            raise ResultError(f"{self.remaining} images are left to attack but the run has {trainer.world_size} "
                              f"processes; run it with at most {self.remaining} "
                              "(--trainer.devices, --trainer.num_nodes)")
        if self._earlier.images and trainer.is_global_zero:
            say(f"resuming: {total - self.remaining} of {total} images are journalled in {self.out_dir}; "
                + (f"attacking the other {self.remaining}" if self.remaining else "writing the result"), sys.stderr)
        if self.remaining:
            numerics = vars(NumericsInfo.current(trainer.strategy.root_device, *_numerics_options(trainer, pl_module)))
            self._journal = JournalWriter(self.out_dir, trainer.global_rank, parts, numerics)

    def fingerprint_parts(self, trainer, pl_module) -> dict:
        """Everything that decides the numbers (not where they go or how they are shown)."""
        from benchmark.models import model_fingerprint
        from benchmark.models.mmseg_adapter import library_versions

        source = _adversarial_source(trainer)
        checkpoints = {}
        for name in dict.fromkeys([*pl_module.source_names, *pl_module.target_names]):
            known = (pl_module.source_models or {}).get(name)
            checkpoints[name] = known["checkpoint_sha256"] if known else model_fingerprint(name)
        numerics = NumericsInfo.current(trainer.strategy.root_device, *_numerics_options(trainer, pl_module))
        return {"config": self.run_config or {}, "attacks": {a.name: _attack_fingerprint(a) for a in source.attack_infos()},
                "seeds": list(source.seeds), "checkpoints": checkpoints,
                "images": sorted(sample.name for sample in trainer.datamodule.dataset.samples),
                "versions": vars(Versions.current(mmseg=library_versions()["mmseg"])), "numerics": vars(numerics),
                "intervals": vars(self.intervals)}

    def on_validation_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()
        self._examples = []
        self._saved = []

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if batch_idx == 0:  # after the first attack (the attack callback runs first): W&B starts beside the work
            _background_loggers(trainer, "start_run")

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if batch_idx == 1:  # a run started in the background has had a batch's time: a failed start stops us now
            _background_loggers(trainer, "wait_for_run")
        before = len(self._saved)
        if self.save_adv:
            self._save_pngs(trainer, batch)
        if self._journal is not None:  # durable before the next batch starts
            self._journal.append(batch["name"], *pl_module.take_new_records(), self._saved[before:])
        stop_if_requested(batch_done=True)
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
        from benchmark.fileio import sha256_file

        source = _adversarial_source(trainer)
        images = {CLEAN: batch["image"]}
        for key, adv in batch[ADV_KEY].items():
            images[key] = quantise(batch["image"], adv, source.eps(key.attack))
        for condition, tensor in images.items():
            pixels = (tensor.float() * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            for name, array in zip(batch["name"], pixels):
                relative = condition_path(condition if condition == CLEAN else tuple(condition), name)
                path = self.out_dir / "adv" / relative
                write_atomic(path, lambda handle, array=array: Image.fromarray(array).save(handle, format="PNG"))
                self._saved.append(SavedFile(relative, sha256_file(path)))

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        _background_loggers(trainer, "wait_for_run")
        scores = pl_module.compute_scores()  # collectives: every rank takes part
        attempt = pl_module.image_records()
        images = pl_module.image_records(self._earlier.records) if self._earlier.records else attempt
        perturbations = pl_module.perturbation_records(self._earlier.perturbations)
        saved = [*self._earlier.saved, *(_gather(self._saved) if self.save_adv else [])]
        if self._journal is not None:
            self._journal.close()
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        wall = time.perf_counter() - self._start
        self.finish(trainer, pl_module, scores, images, attempt, perturbations, saved, wall)

    def finish_from_journal(self, trainer, pl_module) -> None:
        """The end of a run whose journal held every image (Lightning skipped the empty loop): derive
        the result from the journal alone and write it (rank 0; no collective, no attack)."""
        if self.result is not None or self.remaining != 0 or not trainer.is_global_zero:
            return
        start = time.perf_counter()
        _background_loggers(trainer, "start_run")
        _background_loggers(trainer, "wait_for_run")
        order = image_record_order(pl_module.target_names, pl_module.attacked)
        images = tuple(sorted(self._earlier.records, key=order))
        perturbations = tuple(sorted(self._earlier.perturbations,
                                     key=lambda r: (r.image, r.source, r.condition, r.seed)))
        self.finish(trainer, pl_module, None, images, (), perturbations, list(self._earlier.saved),
                    time.perf_counter() - start)

    def finish(self, trainer, pl_module, scores, images, attempt, perturbations, saved, wall: float) -> None:
        """Derive the result from every per-image record and write it (rank 0): results.json, the saved
        set's manifest, the reports, the loggers, and only then remove the journal."""
        attack_cb = _adversarial_source(trainer)
        result = self._result(trainer.datamodule, pl_module, attack_cb, scores, images, attempt, perturbations, wall)
        self.result = result
        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_result(self.out_dir / "results.json", result)
        if self.save_adv:
            self._write_manifest(result, saved, attack_cb)
        table, heatmaps = write_reports(result, self.out_dir)
        wandb_dir = log_run(trainer.loggers, result, self._examples, heatmaps, self.out_dir)
        remove_journals(self.out_dir)  # last: until here a rerun (or benchmark finalize) writes it all again
        if not self.quiet:
            say("\n" + table)
            if self.per_class != "none":
                say(per_class_table(result, full=self.per_class == "full"))
            files = [self.out_dir / name for name in ("results.json", "results.md", "per_class_metrics.csv")]
            say(f"results: {', '.join(str(p) for p in [*files, *heatmaps])}  "
                f"({wall:.1f} s, {result.timings.images_per_s:.2f} images/s)")
            if wandb_dir is not None:
                say(f"W&B run: {wandb_dir}" + (f"; upload it with: wandb sync {wandb_dir}"
                                                if "offline-run" in str(wandb_dir) else ""))

    def _write_manifest(self, result: RunResult, saved: list[SavedFile], source: AdversarialSource) -> None:
        from benchmark.fileio import sha256_file

        names = sorted({r.image for r in result.images})
        manifest = AdvManifest(
            manifest_version=MANIFEST_VERSION, dataset=result.dataset, images=tuple(names), sources=result.sources,
            models=tuple(m for m in result.models if "source" in m.roles), attacks=result.attacks, seeds=result.seeds,
            budgets=tuple(AttackBudget(a.name, budget_levels(source.eps(a.name))) for a in result.attacks),
            result_sha256=sha256_file(self.out_dir / "results.json"),
            files=tuple(sorted(saved, key=lambda f: f.path)))
        write_manifest(self.out_dir / "adv", manifest)

    def _numerics(self, module, attack_cb: AdversarialSource, attempt) -> NumericsInfo:
        """The numerics the records were computed under: this attempt's, or, when it attacked nothing
        (the journal held every image), the journal's."""
        if not attempt and self._earlier.numerics is not None:
            return NumericsInfo(**self._earlier.numerics)
        return NumericsInfo.current(module.device, getattr(attack_cb, "autocast", None), module.channels_last,
                                    getattr(attack_cb, "compile", None))

    def _result(self, data, module, attack_cb: AdversarialSource, scores, images, attempt, perturbations,
                wall: float) -> RunResult:
        from benchmark.models.mmseg_adapter import library_versions

        num_images = len({r.image for r in images})
        expected = len(data.dataset)
        if num_images != expected:
            raise ResultError(f"{num_images} images were scored but the dataset has {expected}; "
                              "refusing to write an incomplete result")
        dataset = DatasetInfo(name=data.dataset_name, split=data.split, num_images=num_images,
                              split_size=data.split_size, image_limit=data.limit, input_policy=data.input_policy,
                              class_names=tuple(data.info.classes), ignore_index=data.ignore_index,
                              batch_size=data.batch_size,
                              shard=None if data.shard is None else ShardInfo(*data.shard, job_images=data.job_size))
        models = []
        for name in dict.fromkeys([*module.target_names, *module.source_names]):
            info = module.model_info(name)
            roles = tuple(r for r, names in (("source", module.source_names), ("target", module.target_names))
                          if name in names)
            models.append(ModelInfo(name=name, roles=roles, config=info["config"],
                                    checkpoint_sha256=info["checkpoint_sha256"], inference_mode=info["mode"],
                                    origin=info.get("origin")))
        attacks = attack_cb.attack_infos()
        sources = tuple(module.source_infos)
        metrics, summaries, comparisons = derive(
            images, targets=module.target_names, sources=[s.id for s in sources], attacks=[a.name for a in attacks],
            seeds=attack_cb.seeds, num_classes=len(data.info.classes), intervals=self.intervals)
        _check_torchmetrics_agree(attempt, scores, len(data.info.classes))
        return RunResult(schema_version=SCHEMA_VERSION, dataset=dataset, models=tuple(models), sources=sources,
                         attacks=attacks, seeds=tuple(attack_cb.seeds), adv_format=attack_cb.adv_format,
                         intervals=self.intervals, provenance=attack_cb.provenance,
                         versions=Versions.current(mmseg=library_versions()["mmseg"]),
                         numerics=self._numerics(module, attack_cb, attempt),
                         timings=Timings(wall_s=round(wall, 3),
                                         images_per_s=round(len({r.image for r in attempt}) / max(wall, 1e-9), 4)),
                         metrics=metrics, summaries=summaries, comparisons=comparisons,
                         perturbation_summaries=perturbation_summaries(perturbations, [s.id for s in sources],
                                                                       [a.name for a in attacks]),
                         images=images, perturbations=perturbations)


def _numerics_options(trainer, pl_module) -> tuple:
    """(autocast, channels_last, compile) of the run, for :meth:`NumericsInfo.current`."""
    source = _adversarial_source(trainer)
    return (getattr(source, "autocast", None), getattr(pl_module, "channels_last", False),
            getattr(source, "compile", None))


def _background_loggers(trainer, method: str) -> None:
    """Call ``method`` of every logger that starts in the background (:class:`BackgroundWandbLogger`)."""
    for logger in trainer.loggers:
        getattr(logger, method, lambda: None)()


def _adversarial_source(trainer) -> AdversarialSource:
    return next(cb for cb in trainer.callbacks if isinstance(cb, AdversarialSource))


def _gather(items: list) -> list:
    """Every rank's ``items``, concatenated (a collective under DDP)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        parts = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(parts, items)
        return [item for part in parts for item in part]
    return list(items)


def _check_torchmetrics_agree(attempt, scores, num_classes: int) -> None:
    """This attempt's per-image records and torchmetrics' synchronised confusion matrices (which saw the
    same images) must give the same numbers."""
    if not attempt:
        return  # everything came from the journal
    for (target, source, condition, seed), (point, success) in point_scores(attempt, num_classes).items():
        s, fresh_success = scores[(target, CLEAN if source is None else AdvKey(source, condition, seed))]
        fresh_success = None if fresh_success is None or math.isnan(fresh_success) else fresh_success
        if not same_values((point.miou, point.per_class_iou, point.pixel_accuracy, success, point.num_images),
                           (s.miou, tuple(s.per_class_iou), s.pixel_accuracy, fresh_success, s.num_images)):
            raise ResultError(f"{target}/{condition}: the per-image records give mIoU {point.miou} but the "
                              f"metric states {s.miou}; refusing to write an inconsistent result")


def _attack_fingerprint(info) -> str | list:
    """An attack's settings hash, plus its plugin's source digests: a plugin edited between a kill and the
    rerun makes the journal's fingerprint differ (built-in attacks keep their fingerprint)."""
    return info.settings_hash if info.origin is None else [info.settings_hash, info.origin.sha256]
