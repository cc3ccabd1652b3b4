"""The attack callback: runs every configured attack on the source for each validation batch."""

from __future__ import annotations

import hashlib
import math
import time
from typing import Any

import lightning.pytorch as pl
import torch

from benchmark.attacks import ATTACKS, Attack, build_attack
from benchmark.attacks.registry import attack_origins, base_name
from benchmark.errors import ConfigError
from benchmark.lightning import ADV_KEY, AdvKey
from benchmark.lightning.runlog import log, say, seconds_since_start
from benchmark.plugins import load_attack_plugins
from benchmark.results import AttackInfo, Provenance

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


def _compile_backend(value: bool | str) -> str | None:
    """attack.compile as a backend name (None: eager), checked against torch's backends."""
    if value is False or value is None:
        return None
    backend = "inductor" if value is True else value
    if not isinstance(backend, str):
        raise ConfigError(f"attack.compile must be true, false or a torch.compile backend name, got {value!r}")
    import torch._dynamo  # only when asked for: about a second of imports

    known = torch._dynamo.list_backends(exclude_tags=())
    if backend not in known:
        raise ConfigError(f"attack.compile: unknown torch.compile backend {backend!r}; known: {', '.join(known)}")
    return backend


def _check_budget(name: str, base) -> None:
    """Refuse budgets that are almost surely unit mistakes (see ``allow_large_budget``)."""
    eps, alpha = base.eps, getattr(base, "alpha", None)
    hint = "budgets are fractions of the [0, 1] pixel range (8/255 = 0.0314); pass --attack.allow_large_budget true if you mean it"
    if eps >= 0.25:
        raise ConfigError(f"attack {name!r}: eps {eps:g} is {255 * eps:g}/255, a quarter of the pixel range or more: {hint}")
    if alpha is not None and alpha > eps + 1e-12:
        raise ConfigError(f"attack {name!r}: step alpha {alpha:g} is larger than eps {eps:g}: {hint}")


def _one_origin(key: str, name: str) -> dict[str, Any] | None:
    """The plugin behind attack ``name`` (None: built-in parts only). A result records one plugin per
    attack, so an attack joining parts of two plugins is refused."""
    records = attack_origins(name)
    if len(records) > 1:
        raise ConfigError(f"attack {key!r} joins parts of two plugins ({records[0]['import']}, "
                          f"{records[1]['import']}); a result records one plugin per attack: put them in one file")
    return records[0] if records else None


class AdversarialSource(pl.Callback):
    """What fills ``batch["adv"]``, as the module, the CLI and the results writer see it: the attacks
    (names, full settings), the seeds, the adversarial format and, for a saved set, its provenance."""

    seeds: list[int]
    adv_format: str
    provenance: Provenance | None = None

    @property
    def names(self) -> list[str]:
        raise NotImplementedError

    def attack_infos(self) -> tuple[AttackInfo, ...]:
        raise NotImplementedError

    def eps(self, attack: str) -> float:
        """The L-inf budget of ``attack`` (fraction of the pixel range)."""
        raise NotImplementedError


class AttackCallback(AdversarialSource):
    """Craft adversarial images on every source model and put them in ``batch["adv"]``.

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
        seeds: several run seeds instead of ``seed``: every attack runs once per seed (results report
            each seed and the mean and standard deviation over them). None: ``[seed]``.
        ensemble: how an ensemble source is combined: "logits" or "loss" (ignored for one source).
        autocast: run the source under torch.autocast with this dtype ("bf16" | "fp16"); None = fp32.
        compile: ``torch.compile`` the source models for the attack: true (the default backend,
            inductor) or a backend name; false (default): eager. The first batch of each shape pays the
            compilation, which is timed and reported (stdout and run.log); recorded in the numerics.
        adv_format: "float" (default): targets see the attack's float images, as transfer in memory;
            "png_uint8": targets see them as 8-bit lossless files hold them (see :func:`quantise`),
            as transfer through saved images. Recorded in results.
        allow_large_budget: accept ``eps >= 0.25`` or a step ``alpha`` above ``eps``; both are almost
            always unit mistakes (``eps: 8`` or ``1`` meaning 8/255 or 1/255), so they are refused
            unless this says they are meant.
        plugins: users' attack files or modules (``path/to/my_attack.py``, ``my_pkg.attacks``), written in
            the form of a built-in method file, loaded before the attacks are built, in every process;
            installed packages' ``transegpgd_bench.attacks`` entry points are loaded too. Results record
            each plugin attack's import name, distribution, version and source sha256.
    """

    def __init__(self, attacks: list[str | dict[str, Any]], eps: float = EIGHT_255, steps: int | None = 20,
                 alpha: float | None = None, seed: int = 0, seeds: list[int] | None = None, ensemble: str = "logits",
                 autocast: str | None = None, adv_format: str = "float", allow_large_budget: bool = False,
                 compile: bool | str = False, plugins: list[str] | None = None):
        super().__init__()
        self.plugins = load_attack_plugins(plugins)
        if adv_format not in ("float", "png_uint8"):
            raise ConfigError(f"attack.adv_format must be float or png_uint8, got {adv_format!r}")
        self.adv_format = adv_format
        self._started = False
        if not attacks:
            raise ConfigError("attack.attacks is empty: name at least one attack")
        if autocast not in (None, "bf16", "fp16"):
            raise ConfigError(f"attack.autocast must be bf16, fp16 or null, got {autocast!r}")
        if seeds is not None and (not seeds or len(set(seeds)) != len(seeds)
                                  or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in seeds)):
            raise ConfigError(f"attack.seeds must be distinct non-negative integers, got {seeds!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"attack.seed must be a non-negative integer, got {seed!r}")
        self.compile = _compile_backend(compile)
        self._compiled: dict[str, Any] = {}
        self.seeds = list(seeds) if seeds is not None else [seed]
        self.autocast, self.ensemble = autocast, ensemble
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
            if not allow_large_budget:
                _check_budget(key, attack.settings.base)
            self.attacks[key] = attack
        self.origins = {key: _one_origin(key, attack.name) for key, attack in self.attacks.items()}

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

    def attack_infos(self) -> tuple[AttackInfo, ...]:
        return tuple(AttackInfo.from_settings(name, attack.to_dict(), origin=self.origins[name])
                     for name, attack in self.attacks.items())

    def eps(self, attack: str) -> float:
        return self.attacks[attack].settings.base.eps

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.validate_loop.inference_mode:
            raise ConfigError("the attack needs gradients: run the Trainer with inference_mode=False")

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if not self._started:  # the start-up cost a user waits for (docs/explanation/performance.md, "Speed of the whole job")
            self._started = True
            log.info("first attack started %.2f s after the command (rank %d)", seconds_since_start(),
                     trainer.global_rank)
        images, labels = batch["image"], attack_labels(batch["image"], batch["label"])
        adversarial = {}
        progress = getattr(trainer, "progress_bar_callback", None)
        sources = pl_module.sources
        if self.compile:
            sources = {source_id: self._compiled_source(trainer, source_id, source, images)
                       for source_id, source in sources.items()}
        for source_id, source in sources.items():
            if any(model.training for model in (source if isinstance(source, list) else [source])):
                raise RuntimeError("the source model must be in eval mode during the attack")
            for name, attack in self.attacks.items():
                for seed in self.seeds:
                    if hasattr(progress, "show_attack"):
                        progress.show_attack(name if len(pl_module.sources) == 1 else f"{name} from {source_id}",
                                             len(batch["name"]))
                    # the generators do not depend on the source: every source starts from the same
                    # random points (common random numbers), and one-source runs keep their numbers
                    generators = image_generators(seed, name, batch["name"], images.device)
                    with torch.enable_grad(), self._autocast(images.device):
                        adv = attack(source, images, labels, generator=generators)
                    if self.adv_format == "png_uint8":
                        adv = quantise(images, adv, attack.settings.base.eps)
                    adversarial[AdvKey(source_id, name, seed)] = adv
        batch[ADV_KEY] = adversarial

    def _compiled_source(self, trainer, source_id: str, source, images: torch.Tensor):
        """The source (or ensemble) compiled with :attr:`compile`; on first use, one forward + input
        backward on this batch is timed (the compilation) and reported."""
        if source_id not in self._compiled:
            members = source if isinstance(source, list) else [source]
            compiled = [torch.compile(model, backend=self.compile) for model in members]
            start = time.perf_counter()
            x = images.detach().clone().requires_grad_(True)
            with torch.enable_grad(), self._autocast(images.device):
                for model in compiled:
                    torch.autograd.grad(model(x).float().sum(), x)
            if images.device.type == "cuda":
                torch.cuda.synchronize(images.device)
            text = (f"attack.compile {self.compile}: source {source_id} compiled in {time.perf_counter() - start:.1f} s "
                    f"(forward + input backward of a {'x'.join(map(str, images.shape))} batch; a batch of "
                    "another shape compiles again)")
            if trainer.is_global_zero:
                say(text)
            self._compiled[source_id] = compiled if isinstance(source, list) else compiled[0]
        return self._compiled[source_id]

    def _autocast(self, device: torch.device):
        if self.autocast is None:
            return torch.autocast(device.type, enabled=False)
        dtype = torch.bfloat16 if self.autocast == "bf16" else torch.float16
        return torch.autocast(device.type, dtype=dtype)
