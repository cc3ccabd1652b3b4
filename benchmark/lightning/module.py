"""The thin LightningModule: holds the source and target models and the metrics; nothing else."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.errors import ConfigError, ModelError
from benchmark.lightning import ADV_KEY, AdvKey
from benchmark.metrics import AttackSuccessRate, Scores, SegmentationScores, per_image_counts
from benchmark.models import build_zoo_model, get_model_entry
from benchmark.results import CLEAN, ImageRecord, PerturbationRecord, SourceInfo
from benchmark.results.schema import image_record_order


def at_label_size(model: nn.Module, size: tuple[int, int]):
    """``model`` whose logits are resized (bilinear) to the label ``size`` when they differ.

    With ``data.resize: mmseg`` the image is resized for the model while the label keeps its original
    resolution; like mmseg's evaluation, the logits are brought back to the label size before the
    argmax, and the attack differentiates through the same resize. Identity when the sizes agree.
    """
    size = tuple(size)

    def forward(images: torch.Tensor) -> torch.Tensor:
        logits = model(images)
        if tuple(logits.shape[-2:]) != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits

    return forward


def _metric_key(target: str, condition: AdvKey | str) -> str:
    # ModuleDict keys may not contain "."; "+", "-" and "@" are fine.
    text = condition if isinstance(condition, str) else f"{condition.source}/{condition.attack}@{condition.seed}"
    return f"{target}/{text}".replace(".", "_")


def source_specs(source: list[str] | None, sources: list[str | list[str]] | None) -> list[tuple[str, ...]]:
    """The run's sources as model-name tuples: ``sources`` (each a name, or a list = an ensemble), or
    the single ``source`` (one name, or several = an ensemble)."""
    if sources and source:
        raise ConfigError("give model.source (one source) or model.sources (several), not both")
    specs = [tuple([s] if isinstance(s, str) else s) for s in sources] if sources else ([tuple(source)] if source else [])
    if not specs or any(not spec for spec in specs):
        raise ConfigError("model.source (or model.sources) and model.targets must each name at least one zoo model")
    if len(set(specs)) != len(specs):
        raise ConfigError(f"model.sources lists a source twice: {[list(s) for s in specs]}")
    return specs


class TransferModule(pl.LightningModule):
    """Evaluate target models on clean and adversarial images.

    Args:
        source: zoo name(s) of the source model; several names form an ensemble source (the attack's
            ``ensemble`` setting says how their outputs are combined).
        sources: several sources for a source x target matrix in one run, instead of ``source``: each a
            zoo name or a list of names (an ensemble). Every attack runs on every source.
        targets: zoo names of the target models (a source may be among them: its white-box cell).
        conditions: canonical names of the attacks whose images arrive in ``batch["adv"]`` (linked
            from the attack callback by the CLI).
        seeds: the attack seeds (linked from the attack callback); every attack runs once per seed.
        ensemble: how an ensemble source combines its models, "logits" or "loss" (linked from the
            attack callback; part of the source's id).
        num_classes: the dataset's class count (linked from the data module); every model must match.
        ignore_index: label value excluded from every metric (linked from the data module).
        mode: inference mode override ("whole" | "slide") for every model; None keeps each config's.
        num_examples: images per rank whose clean/adversarial predictions are returned for logging.
        checkpoint_windows: slide-mode source models recompute each window in the backward pass
            instead of keeping every window's activations (same gradients, one extra forward; for
            large images such as Cityscapes on a GPU with little memory, with ``mode: slide`` for
            sources whose config tests in whole mode). It changes nothing for a whole-mode source.
        source_models: provenance of source models that are not built here (``benchmark evaluate``
            reads saved adversarial images and needs no source): dicts with name, config,
            checkpoint_sha256 and mode, as in the saved set's manifest. None: every source is built.
        eval_batch_size: images per target forward pass. The clean and every adversarial set of a batch
            are stacked along the batch and evaluated in chunks of this many images (None: all in one
            pass); clean predictions are made once per target. It changes speed and memory only.
        channels_last: keep every model's weights and inputs in ``torch.channels_last`` memory (faster
            convolutions on recent GPUs, with bf16 above all; ``benchmarks/gpu_check.py`` measures it). Numbers
            change only by float rounding; recorded in the result's numerics.
    """

    def __init__(self, source: list[str] | None = None, targets: list[str] | None = None,
                 sources: list[str | list[str]] | None = None, conditions: list[str] | None = None,
                 seeds: list[int] | None = None, ensemble: str = "logits", num_classes: int = 0,
                 ignore_index: int = 255, mode: str | None = None, num_examples: int = 4,
                 checkpoint_windows: bool = False, source_models: list[dict] | None = None,
                 eval_batch_size: int | None = 64, channels_last: bool = False):
        super().__init__()
        specs = source_specs(source, sources)
        if not targets:
            raise ConfigError("model.targets must name at least one zoo model")
        self.source_infos = [SourceInfo(models=spec, ensemble=ensemble if len(spec) > 1 else None) for spec in specs]
        self.source_names = list(dict.fromkeys(name for spec in specs for name in spec))
        self.target_names = list(targets)
        self.source_models = {m["name"]: dict(m) for m in source_models} if source_models is not None else None
        built = self.target_names if self.source_models is not None else [*self.source_names, *self.target_names]
        if self.source_models is not None and set(self.source_names) - set(self.source_models) - set(self.target_names):
            raise ConfigError(f"model.source_models lacks {sorted(set(self.source_names) - set(self.source_models))}")
        self.built_names = list(dict.fromkeys(built))
        for name in self.built_names:
            entry = get_model_entry(name)  # imports a factory entry's factory: a bad one fails here
            if entry.checkpoint_path is not None and not entry.checkpoint_path.is_file():
                hint = f" (benchmark fetch-checkpoint {name})" if entry.url else ""
                raise ConfigError(f"checkpoint of model {name!r} not found: {entry.checkpoint_path}{hint}")
        self.attacked = [AdvKey(info.id, attack, seed) for info in self.source_infos
                         for attack in conditions or [] for seed in seeds or [0]]
        self.conditions = [CLEAN, *self.attacked]
        self.num_classes, self.ignore_index, self.mode = num_classes, ignore_index, mode
        self.num_examples, self.checkpoint_windows = num_examples, checkpoint_windows
        if eval_batch_size is not None and (isinstance(eval_batch_size, bool) or not isinstance(eval_batch_size, int)
                                            or eval_batch_size < 1):
            raise ConfigError(f"model.eval_batch_size must be a positive integer or null, got {eval_batch_size!r}")
        self.eval_batch_size = eval_batch_size
        if not isinstance(channels_last, bool):
            raise ConfigError(f"model.channels_last must be true or false, got {channels_last!r}")
        self.channels_last = channels_last
        self.nets = nn.ModuleDict()
        self.scores = nn.ModuleDict({
            _metric_key(t, c): SegmentationScores(num_classes, ignore_index=ignore_index, validate_args=False)
            for t in self.target_names for c in self.conditions
        })
        self.success = nn.ModuleDict({
            _metric_key(t, c): AttackSuccessRate(ignore_index=ignore_index)
            for t in self.target_names for c in self.attacked
        })
        self._examples_seen = 0
        self._images: list[ImageRecord] = []
        self._perturbations: list[PerturbationRecord] = []
        self._taken = (0, 0)

    def setup(self, stage: str) -> None:
        for name in self.built_names:
            if name not in self.nets:
                net = build_zoo_model(name, device=self.device, mode=self.mode,
                                      checkpoint_windows=self.checkpoint_windows and name in self.source_names)
                if net.num_classes != self.num_classes:
                    raise ConfigError(f"model {name!r} predicts {net.num_classes} classes but the dataset has "
                                      f"{self.num_classes}")
                self.nets[name] = net.use_channels_last() if self.channels_last else net
        sources = [self.nets[name] for name in self.source_names if name in self.nets]
        if self.checkpoint_windows and sources and not any(net.mode == "slide" for net in sources):
            from lightning.pytorch.utilities import rank_zero_warn

            rank_zero_warn("model.checkpoint_windows has no effect: no source infers in slide mode (its config "
                           "tests in whole mode; model.mode slide switches to windows)")

    @property
    def sources(self) -> dict[str, nn.Module | list[nn.Module]]:
        """Source id -> the source model, or the list of models of an ensemble source."""
        out = {}
        for info in self.source_infos:
            models = [self.nets[name] for name in info.models]
            out[info.id] = models[0] if len(models) == 1 else models
        return out

    @property
    def source(self) -> nn.Module | list[nn.Module]:
        """The source of a single-source run (the model, or the list of an ensemble)."""
        if len(self.source_infos) != 1:
            raise RuntimeError(f"this run has {len(self.source_infos)} sources; use .sources")
        return next(iter(self.sources.values()))

    def model_info(self, name: str) -> dict:
        """Provenance of one model for result files."""
        if name not in self.nets:
            return dict(self.source_models[name])
        net = self.nets[name]
        info = {"name": name, "config": get_model_entry(name).recorded_config,
                "checkpoint_sha256": net.checkpoint_sha256, "mode": net.mode}
        return info if net.origin is None else {**info, "origin": net.origin}

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        labels = batch["label"]
        inputs = {CLEAN: batch["image"], **batch.get(ADV_KEY, {})}
        missing = [c for c in self.conditions if c not in inputs]
        if missing:
            raise RuntimeError(f"batch lacks adversarial images for {missing}; is the attack callback set?")
        n, conditions = labels.shape[0], self.conditions
        keep = max(0, min(n, self.num_examples - self._examples_seen))
        examples = {}
        valid = labels != self.ignore_index
        # Every condition of the batch stacked along the batch: one forward per target and chunk of
        # eval_batch_size images, the clean predictions once per target.
        stacked = torch.cat([inputs[c] for c in conditions])
        chunk = self.eval_batch_size or stacked.shape[0]
        counts, extremes = [], []
        with torch.no_grad():
            for target in self.target_names:
                net = at_label_size(self.nets[target], labels.shape[-2:])
                preds, limits = [], []
                for part in stacked.split(chunk):
                    logits = net(part)
                    preds.append(logits.argmax(1))
                    # per image, the largest and smallest logit: NaN or inf there flags a broken target
                    limits.append(torch.stack([logits.amax(dim=(1, 2, 3)), logits.amin(dim=(1, 2, 3))], dim=1))
                extremes.append(torch.cat(limits))  # (C * N, 2)
                preds = torch.cat(preds).view(len(conditions), *labels.shape)  # (C, N, H, W); 0 is clean
                clean_pred = preds[0]
                for i, condition in enumerate(conditions):
                    key = _metric_key(target, condition)
                    self.scores[key].update(preds[i], labels)
                    if i:
                        self.success[key].update(clean_pred, preds[i], labels)
                    examples[(target, condition)] = preds[i, :keep]
                inter, predicted, labelled = per_image_counts(preds.flatten(0, 1), labels.repeat(len(conditions), 1, 1),
                                                              self.num_classes, self.ignore_index)
                fooled = (valid & (clean_pred == labels) & (preds != labels)).sum((2, 3)).flatten()  # (C * N,)
                counts.append(torch.cat([inter, predicted, labelled, fooled[:, None]], dim=1))
        counts = torch.stack(counts).view(len(self.target_names), len(conditions), n, -1)
        stats = self._perturbation_stats(inputs)  # (attacked, 2, N)
        extremes = torch.stack(extremes).view(len(self.target_names), len(conditions), n, 2)
        # the one device-to-host copy of the batch: counts (exact in float64 below 2**53), norms and the
        # logit extremes together
        host = torch.cat([counts.flatten().double(), stats.flatten().double(), extremes.flatten().double()]).cpu()
        host_counts, host_stats, host_extremes = host.split([counts.numel(), stats.numel(), extremes.numel()])
        self._check_adversarial_finite(batch["name"], host_stats.view(stats.shape))
        self._check_finite(batch["name"], host_extremes.view(extremes.shape))
        host_counts = host_counts.long().view(counts.shape).tolist()
        for t, target in enumerate(self.target_names):
            for i, condition in enumerate(conditions):
                self._record_images(batch["name"], target, condition, host_counts[t][i])
        self._record_perturbations(batch["name"], host_stats.view(stats.shape).tolist())
        self._examples_seen += keep
        return {"examples": examples, "num_examples": keep}

    def _check_adversarial_finite(self, names, stats: torch.Tensor) -> None:
        """ModelError for the first (attack, image) whose adversarial image is not finite.

        ``stats``: (attacked conditions, 2, N) float64 on the host (:meth:`_perturbation_stats`). The attack
        core returns NaN for an image whose source logits or input gradient turned non-finite (a source
        with broken weights, an fp16 overflow under autocast), instead of an unchanged image that would
        be scored as an attack that failed.
        """
        if bool(torch.isfinite(stats).all()):
            return
        c, _, image = (~torch.isfinite(stats)).nonzero()[0].tolist()
        key = self.attacked[c]
        raise ModelError(f"source {key.source!r}, attack {key.attack} (seed {key.seed}): the source's logits or the "
                         f"input gradient turned non-finite on image {names[image]} of batch [{names[0]}, ...]; the "
                         "source's weights or the numerics (autocast fp16 overflow?) are broken")

    def _check_finite(self, names, extremes: torch.Tensor) -> None:
        """ModelError for the first (target, condition, image) whose logits hold NaN or inf.

        ``extremes``: (targets, conditions, N, 2) float64 on the host, each image's largest and smallest
        logit (NaN if any logit is NaN, +-inf if one is infinite). A target with NaN weights or an fp16
        overflow would otherwise predict one class everywhere and be scored as if it worked.
        """
        if bool(torch.isfinite(extremes).all()):
            return
        t, i, image = (~torch.isfinite(extremes)).any(dim=3).nonzero()[0].tolist()
        condition = self.conditions[i]
        what = ("clean image" if condition == CLEAN
                else f"adversarial image ({condition.source}/{condition.attack}@{condition.seed})")
        kind = "NaN" if bool(extremes[t, i, image].isnan().any()) else "inf"
        raise ModelError(f"model {self.target_names[t]!r} gives non-finite logits ({kind}) on the {what} "
                         f"{names[image]} of batch [{names[0]}, ...]; its weights or the numerics (autocast fp16 "
                         "overflow?) are broken")

    def _perturbation_stats(self, inputs) -> torch.Tensor:
        """(attacked conditions, 2, N): L-inf and L2 of what the targets see minus the clean image."""
        clean = inputs[CLEAN]
        deltas = ((inputs[c] - clean).float().flatten(1) for c in self.attacked)  # one at a time in memory
        stats = [torch.stack([d.abs().amax(1), d.norm(dim=1)]) for d in deltas]
        return torch.stack(stats) if stats else clean.new_zeros((0, 2, clean.shape[0]), dtype=torch.float32)

    def _record_perturbations(self, names, stats: list) -> None:
        """Perturbation records from the host rows of :meth:`_perturbation_stats`."""
        linf, l2 = [row[0] for row in stats], [row[1] for row in stats]
        for c, condition in enumerate(self.attacked):
            for n, name in enumerate(names):
                self._perturbations.append(PerturbationRecord(name, condition.source, condition.attack, condition.seed,
                                                              min(linf[c][n], 1.0), l2[c][n]))

    def _record_images(self, names, target, condition: AdvKey | str, counts: list[list[int]]) -> None:
        """Per-image pixel counts (the audit trail of results.json) from host rows of
        [intersection (K), predicted (K), labelled (K), fooled] per image."""
        source, attack, seed = (None, CLEAN, None) if condition == CLEAN else condition
        k = self.num_classes
        for name, row in zip(names, counts):
            inter, pred, gt = row[:k], row[k:2 * k], row[2 * k:3 * k]
            classes = [c for c in range(k) if pred[c] or gt[c]]
            self._images.append(ImageRecord(
                image=name, target=target, source=source, condition=attack, seed=seed, classes=tuple(classes),
                intersection=tuple(inter[c] for c in classes), predicted=tuple(pred[c] for c in classes),
                labelled=tuple(gt[c] for c in classes), fooled=None if condition == CLEAN else row[3 * k]))

    def on_validation_epoch_start(self) -> None:
        self._examples_seen = 0
        self._images, self._perturbations = [], []
        self._taken = (0, 0)

    def take_new_records(self) -> tuple[list[ImageRecord], list[PerturbationRecord]]:
        """This rank's per-image and perturbation records added since the last call (one batch's, for
        the journal)."""
        images, perturbations = self._images[self._taken[0]:], self._perturbations[self._taken[1]:]
        self._taken = (len(self._images), len(self._perturbations))
        return images, perturbations

    def image_records(self, earlier: tuple[ImageRecord, ...] = ()) -> tuple[ImageRecord, ...]:
        """Every rank's per-image records of this attempt (a collective under DDP) plus ``earlier`` ones
        (a resumed run's journal), in a rank- and attempt-independent order."""
        records = list(self._images)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, records)
            records = [record for part in gathered for record in part]
        records += earlier
        return tuple(sorted(records, key=image_record_order(self.target_names, self.attacked)))

    def perturbation_records(self, earlier: tuple[PerturbationRecord, ...] = ()) -> tuple[PerturbationRecord, ...]:
        """Every rank's perturbation records of this attempt (a collective under DDP) plus ``earlier`` ones."""
        records = list(self._perturbations)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, records)
            records = [record for part in gathered for record in part]
        return tuple(sorted([*records, *earlier], key=lambda r: (r.image, r.source, r.condition, r.seed)))

    def compute_scores(self) -> dict[tuple, tuple[Scores, float | None]]:
        """(target, condition) -> (scores, success rate or None for clean); condition is "clean" or an
        :class:`AdvKey`; synced over all ranks."""
        out = {}
        for target in self.target_names:
            for condition in self.conditions:
                key = _metric_key(target, condition)
                success = None if condition == CLEAN else self.success[key].compute()
                out[(target, condition)] = (self.scores[key].compute(), success)
        return out
