"""The attack callback: runs every configured attack on the source for each validation batch."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import lightning.pytorch as pl
import torch

from benchmark.attacks import ATTACKS, Attack, build_attack
from benchmark.attacks.registry import base_name
from benchmark.errors import ConfigError
from benchmark.lightning import ADV_KEY

EIGHT_255 = 8 / 255


def image_generators(seed: int, attack: str, names: list[str], device: torch.device) -> list[torch.Generator]:
    """One generator per image, seeded from (run seed, attack name, sha256 of the sample name).

    sha256 (not Python's salted ``hash``) makes the seed identical on every rank and every run, so an
    image's adversarial example does not depend on its batch, rank or world size (pitfalls §21).
    """
    generators = []
    for name in names:
        digest = hashlib.sha256(f"{seed}\0{attack}\0{name}".encode()).digest()
        generator = torch.Generator(device=device)
        generator.manual_seed(int.from_bytes(digest[:8], "little"))
        generators.append(generator)
    return generators


def attack_labels(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Labels at the images' resolution for the attack's loss.

    With ``data.resize: mmseg`` the images are resized for the models while the labels keep their
    original size (metrics are computed there, from logits resized back). The attack works in the
    models' input geometry (so DI and TI act on what the model sees), with the labels resized by nearest
    neighbour -- the only way labels are ever resized. Identity when the sizes agree.
    """
    if labels.shape[-2:] == images.shape[-2:]:
        return labels
    resized = torch.nn.functional.interpolate(labels[:, None].float(), size=images.shape[-2:], mode="nearest")
    return resized[:, 0].long()


def quantise(images: torch.Tensor, adversarial: torch.Tensor, eps: float) -> torch.Tensor:
    """The adversarial images as 8-bit files hold them, still inside the budget (pitfalls §15).

    Both images are rounded to 0..255 (``x8 = round(255 x)``), and the rounded adversarial image is
    projected back in integer space onto ``[x8 - e, x8 + e]`` with ``e = floor(255 eps + 1e-6)``, then
    onto ``[0, 255]``: truncation or plain rounding could leave the eps-ball by up to one level.
    Returns ``a8 / 255`` in the input's dtype.
    """
    x8 = (images.float() * 255).round()
    a8 = (adversarial.float() * 255).round()
    e = math.floor(255 * eps + 1e-6)
    a8 = torch.max(torch.min(a8, x8 + e), x8 - e).clamp(0, 255)
    return (a8 / 255).to(adversarial.dtype)


class AttackCallback(pl.Callback):
    """Craft adversarial images on the source model and put them in ``batch["adv"]``.

    The attacks are built here, at construction, so a bad name or setting fails before any data is read.

    Args:
        attacks: attack entries: a registry name (``"transegpgd+mi"``) or a mapping with ``name`` plus
            that attack's own settings (e.g. ``{name: segpgd, lambda_offset: 1}``) and an optional
            ``label`` that names the condition instead of the canonical name (ablations that run one
            attack under several settings).
        eps: L-inf budget for every attack, fraction of the [0, 1] pixel range (default 8/255).
        steps: iterations for every iterative attack (None: each attack's own default).
        alpha: step size, same unit as eps (None: each attack's own default).
        seed: run seed for the per-image generators (random start, step sizes, DI draws).
        ensemble: how an ensemble source is combined: "logits" or "loss" (ignored for one source).
        autocast: run the source under torch.autocast with this dtype ("bf16" | "fp16"); None = fp32.
        adv_format: "float" (default): targets see the attack's float images, as transfer in memory;
            "png_uint8": targets see them as 8-bit lossless files hold them (see :func:`quantise`),
            as transfer through saved images. Recorded in results.
    """

    def __init__(self, attacks: list[str | dict[str, Any]], eps: float = EIGHT_255, steps: int | None = 20,
                 alpha: float | None = None, seed: int = 0, ensemble: str = "logits", autocast: str | None = None,
                 adv_format: str = "float"):
        super().__init__()
        if adv_format not in ("float", "png_uint8"):
            raise ConfigError(f"attack.adv_format must be float or png_uint8, got {adv_format!r}")
        self.adv_format = adv_format
        if not attacks:
            raise ConfigError("attack.attacks is empty: name at least one attack")
        if autocast not in (None, "bf16", "fp16"):
            raise ConfigError(f"attack.autocast must be bf16, fp16 or null, got {autocast!r}")
        self.seed, self.autocast = seed, autocast
        common = {"eps": eps, "ensemble": ensemble}
        if steps is not None:
            common["steps"] = steps
        if alpha is not None:
            common["alpha"] = alpha
        self.attacks: dict[str, Attack] = {}
        for entry in attacks:
            entry = {"name": entry} if isinstance(entry, str) else dict(entry)
            name, label = entry.pop("name", None), entry.pop("label", None)
            if not isinstance(name, str):
                raise ConfigError(f"attack entry {entry!r} has no 'name'")
            attack = build_attack(name, **{**self._track_for(name, common), **entry})
            key = label or attack.name
            if key in self.attacks:
                raise ConfigError(f"attack {key!r} is listed twice (give each a distinct 'label')")
            self.attacks[key] = attack

    @staticmethod
    def _track_for(name: str, common: dict[str, Any]) -> dict[str, Any]:
        """The run's eps/steps/alpha minus what the attack fixes: a one-step attack (FGSM) keeps T=1
        and its step equals its budget, whatever the track's T and alpha."""
        fixed = set(ATTACKS[base_name(name)].fixed)
        if "steps" in fixed:
            fixed.add("alpha")
        return {key: value for key, value in common.items() if key not in fixed}

    @property
    def names(self) -> list[str]:
        """Condition names (canonical attack names, or labels), in configuration order."""
        return list(self.attacks)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.validate_loop.inference_mode:
            raise ConfigError("the attack needs gradients: run the Trainer with inference_mode=False")

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        source = pl_module.source
        models = source if isinstance(source, list) else [source]
        if any(model.training for model in models):
            raise RuntimeError("the source model must be in eval mode during the attack")
        images, labels = batch["image"], attack_labels(batch["image"], batch["label"])
        adversarial = {}
        progress = getattr(trainer, "progress_bar_callback", None)
        for name, attack in self.attacks.items():
            if hasattr(progress, "show_attack"):
                progress.show_attack(name, len(batch["name"]))
            generators = image_generators(self.seed, name, batch["name"], images.device)
            with torch.enable_grad(), self._autocast(images.device):
                adversarial[name] = attack(source, images, labels, generator=generators)
            if self.adv_format == "png_uint8":
                adversarial[name] = quantise(images, adversarial[name], attack.settings.base.eps)
        batch[ADV_KEY] = adversarial

    def _autocast(self, device: torch.device):
        if self.autocast is None:
            return torch.autocast(device.type, enabled=False)
        dtype = torch.bfloat16 if self.autocast == "bf16" else torch.float16
        return torch.autocast(device.type, dtype=dtype)
