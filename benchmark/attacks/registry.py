"""The attack registries and ``build_attack``, the one public entry point of the attack library.

``ATTACKS`` maps base names (and the FGSM presets) to an :class:`AttackEntry`; ``MODIFIERS`` maps the
modifiers to a :class:`ModifierEntry`. Both are filled here at import, are read-only mappings
afterwards, and registering a name twice is an error.

Bases: ``fgsm``, ``bim``, ``pgd``, ``segpgd``, ``cospgd``, ``transegpgd``, ``tsallispgd``, ``dag``,
``apgd``, ``sea``, ``fspgd``, ``rppgd`` and the presets ``mifgsm``, ``nifgsm``, ``difgsm``, ``tifgsm`` (= ``bim``
plus one modifier, alpha = eps / steps, 10 steps) and ``tass`` (= ``bim`` + ``ni`` + ``tdi`` + ``blur``,
TASS as its authors' code has it). Modifiers, by slot:

- gradient transforms: ``mi`` | ``ni`` (momentum), ``vt`` (variance tuning), ``ti``;
- pixel transforms (at most one): ``si``, ``admix``, ``ssa``;
- geometry transforms (at most one): ``di``, ``tdi``, ``ds``, ``bsr``;
- filters (at most one): ``blur``, applied to every model input after the geometry transform;
- ``targeted``: descend towards a target map (bases with a targeted loss only).

Any iterative base joins modifiers with ``+`` (``transegpgd+mi+di+ti``, ``segpgd+vt+ssa``). The
canonical name orders modifiers as :data:`MODIFIER_ORDER`; the execution order is fixed by the core
whatever the spelling.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch
from torch import Tensor

from benchmark.attacks import core, runners
from benchmark.attacks.losses.ce import ce_loss
from benchmark.attacks.losses.cospgd import cospgd_loss
from benchmark.attacks.losses.dag import dag_loss
from benchmark.attacks.losses.fspgd import fspgd_loss
from benchmark.attacks.losses.rppgd import rppgd_loss
from benchmark.attacks.losses.sea import sea_loss
from benchmark.attacks.losses.segpgd import segpgd_loss
from benchmark.attacks.losses.targeted import targeted_ce_loss, targeted_tsallis
from benchmark.attacks.losses.transegpgd import needs_clean_logits, transegpgd_loss
from benchmark.attacks.losses.tsallis import tsallis_loss
from benchmark.attacks.parts import PixelLoss
from benchmark.attacks.rules.apgd import APGDStep
from benchmark.attacks.rules.normalised import LinfNormalisedStep
from benchmark.attacks.rules.sign import SignStep
from benchmark.attacks.settings import (
    AdmixSettings,
    APGDSettings,
    AttackSettings,
    BlurSettings,
    BSRSettings,
    DAGSettings,
    DISettings,
    DSSettings,
    FSPGDSettings,
    IterativeSettings,
    MomentumSettings,
    RPPGDSettings,
    SEASettings,
    SegPGDSettings,
    SISettings,
    SSASettings,
    TargetedSettings,
    TDISettings,
    TISettings,
    TranSegPGDSettings,
    TsallisPGDSettings,
    VTSettings,
)
from benchmark.attacks.transforms.admix import Admix
from benchmark.attacks.transforms.bsr import BlockShuffleRotation
from benchmark.attacks.transforms.di import DiverseInputs
from benchmark.attacks.transforms.ds import DynamicScaling
from benchmark.attacks.transforms.input_blur import Blurred, InputBlur
from benchmark.attacks.transforms.momentum import Momentum
from benchmark.attacks.transforms.si import ScaleInvariance
from benchmark.attacks.transforms.ssa import SpectrumSimulation
from benchmark.attacks.transforms.tass_di import TASSDiverseInputs
from benchmark.attacks.transforms.ti import TranslationInvariant
from benchmark.attacks.transforms.vt import VarianceTuning
from benchmark.errors import ConfigError


def _never(settings: Any) -> bool:
    return False


def _sign_step(settings: Any) -> SignStep:
    return SignStep()


@dataclass(frozen=True)
class AttackEntry:
    """A base attack: its settings class, registry defaults, loss and how it runs.

    Args:
        settings_cls: the frozen settings dataclass.
        make_loss: settings -> pixel loss (None for a feature attack).
        defaults: registry defaults, applied before the caller's keywords.
        needs_clean_logits: settings -> whether the loss reads the clean source logits.
        accepts_modifiers: False for FGSM (one step) and the presets (already one modifier).
        preset_modifiers: modifiers a preset always has (``mifgsm`` -> ("mi",)).
        fixed: settings the caller may not change (FGSM is one step).
        make_feature_loss: settings -> per-image feature loss (FSPGD), or None.
        make_image_loss: settings -> per-image loss on the logits (RP-PGD), or None; it keeps state
            across steps, so such a base takes no geometry transform.
        loss_features: settings -> whether the image loss reads the features of the same forward.
        make_rule: settings -> step rule (default: the sign step).
        target: settings -> the base's own target map (DAG), or None.
        targeted_loss: settings -> the loss of ``+targeted``; None: the base has no targeted mode.
        uses_labels: False for a label-free attack (FSPGD): ignored pixels may move.
        kind: "single" | "apgd" (radius schedule) | "sea" (worst case over losses).
    """

    settings_cls: type[IterativeSettings]
    make_loss: Callable[[Any], PixelLoss | None]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    needs_clean_logits: Callable[[Any], bool] = _never
    accepts_modifiers: bool = True
    preset_modifiers: tuple[str, ...] = ()
    fixed: Mapping[str, Any] = field(default_factory=dict)
    make_feature_loss: Callable[[Any], Any] | None = None
    make_image_loss: Callable[[Any], Any] | None = None
    loss_features: Callable[[Any], bool] = _never
    make_rule: Callable[[Any], Any] = _sign_step
    target: Callable[[Any], core.TargetSpec | None] | None = None
    targeted_loss: Callable[[Any], PixelLoss] | None = None
    uses_labels: bool = True
    kind: str = "single"


@dataclass(frozen=True)
class ModifierEntry:
    """A modifier: its settings class, the part factory (modifier settings, base settings) -> part, its
    slot ("grad", "pixel", "geometry", "filter" or "target"), the modifiers it excludes and the settings that
    count its source passes per step (copies, samples, mixes: what a cheaper run lowers)."""

    settings_cls: type
    make_part: Callable[[Any, Any], Any]
    kind: str
    excludes: tuple[str, ...] = ()
    copy_fields: tuple[str, ...] = ()


def _register(table: dict, name: str, entry: Any) -> None:
    if name in table:
        raise ConfigError(f"attack registry: name {name!r} registered twice")
    table[name] = entry


_ATTACKS: dict[str, AttackEntry] = {}
_MODIFIERS: dict[str, ModifierEntry] = {}

_PGD = {"alpha": 2 / 255, "steps": 10, "random_start": True}
_BIM = {"alpha": 2 / 255, "steps": 10, "random_start": False}
_PRESET = {"alpha": None, "steps": 10, "random_start": False}


def _ce(settings: Any) -> PixelLoss:
    return ce_loss


def _targeted_ce(settings: Any) -> PixelLoss:
    return targeted_ce_loss


def _own_target(settings: Any) -> core.TargetSpec:
    return core.TargetSpec(settings.target_rule, settings.target_class)


def _apgd_rule(settings: Any) -> APGDStep:
    return APGDStep(settings.steps, settings.initial_step, settings.momentum, settings.rho)


def _apgd_loss(settings: APGDSettings) -> PixelLoss:
    return ce_loss if settings.loss == "ce" else functools.partial(sea_loss, loss=settings.loss)


_register(_ATTACKS, "fgsm", AttackEntry(
    IterativeSettings, _ce, {"alpha": None, "steps": 1, "random_start": False},
    accepts_modifiers=False, fixed={"steps": 1},
))
_register(_ATTACKS, "bim", AttackEntry(IterativeSettings, _ce, _BIM, targeted_loss=_targeted_ce))
_register(_ATTACKS, "pgd", AttackEntry(IterativeSettings, _ce, _PGD, targeted_loss=_targeted_ce))
_register(_ATTACKS, "segpgd", AttackEntry(
    SegPGDSettings, lambda s: functools.partial(segpgd_loss, lambda_offset=s.lambda_offset),
    {**_PGD, "steps": 20},
))
_register(_ATTACKS, "cospgd", AttackEntry(IterativeSettings, lambda s: cospgd_loss, {**_PGD, "steps": 20}))
_register(_ATTACKS, "transegpgd", AttackEntry(
    TranSegPGDSettings, lambda s: functools.partial(transegpgd_loss, settings=s),
    {**_PGD, "steps": 20, "step_schedule": "uniform"}, needs_clean_logits=needs_clean_logits,
))
_register(_ATTACKS, "tsallispgd", AttackEntry(
    TsallisPGDSettings,
    lambda s: functools.partial(tsallis_loss, q_start=s.q_start, q_end=s.q_end, q_schedule=s.q_schedule),
    {**_PGD, "steps": 20}, targeted_loss=targeted_tsallis,
))
_register(_ATTACKS, "dag", AttackEntry(
    DAGSettings, lambda s: functools.partial(dag_loss, active_set=s.active_set),
    {**_BIM, "steps": 20}, make_rule=lambda s: LinfNormalisedStep(), target=_own_target,
))
_register(_ATTACKS, "apgd", AttackEntry(
    APGDSettings, _apgd_loss, {"alpha": None, "steps": 20, "random_start": False}, make_rule=_apgd_rule,
    targeted_loss=lambda s: targeted_ce_loss if s.loss == "ce" else None, kind="apgd",
))
_register(_ATTACKS, "sea", AttackEntry(
    SEASettings, lambda s: None, {"alpha": None, "steps": 20, "random_start": False}, make_rule=_apgd_rule,
    kind="sea",
))
_register(_ATTACKS, "fspgd", AttackEntry(
    FSPGDSettings, lambda s: None, {**_PGD, "steps": 20}, uses_labels=False,
    make_feature_loss=lambda s: functools.partial(fspgd_loss, c=s.similarity_c,
                                                  context_features=s.context_features),
))
_register(_ATTACKS, "rppgd", AttackEntry(
    RPPGDSettings, lambda s: None, {"alpha": None, "steps": 3, "random_start": True},
    make_image_loss=lambda s: functools.partial(rppgd_loss, prototypes=s.prototype_grad,
                                                intra_split=s.intra_split),
    loss_features=lambda s: s.prototype_grad,
))
for _preset, _modifier in (("mifgsm", "mi"), ("nifgsm", "ni"), ("difgsm", "di"), ("tifgsm", "ti")):
    _register(_ATTACKS, _preset, AttackEntry(
        IterativeSettings, _ce, _PRESET, accepts_modifiers=False, preset_modifiers=(_modifier,),
    ))
# TASS (He et al., arXiv:2307.16572) as the authors' ``es_NI_DI_TI`` runs it: NI (decay 1) on CE with
# the ground truth, DI shrinking by up to 30 px with p 0.7, a 5x5 Gaussian blur of the model input
# after DI, 10 steps of eps / 10 from the clean image (README "TASS").
_register(_ATTACKS, "tass", AttackEntry(
    IterativeSettings, _ce, _PRESET, accepts_modifiers=False, preset_modifiers=("ni", "tdi", "blur"),
))


def _part(cls: type) -> Callable[[Any, Any], Any]:
    """A part factory for a class taking (modifier settings, base settings)."""
    return lambda settings, base: cls(settings, base)


_register(_MODIFIERS, "mi", ModifierEntry(MomentumSettings, lambda m, b: Momentum(m), "grad", excludes=("ni",)))
_register(_MODIFIERS, "ni", ModifierEntry(
    MomentumSettings, lambda m, b: Momentum(m, nesterov=True), "grad", excludes=("mi",)
))
_register(_MODIFIERS, "vt", ModifierEntry(VTSettings, _part(VarianceTuning), "grad",
                                          copy_fields=("vt_samples",)))
_register(_MODIFIERS, "si", ModifierEntry(SISettings, _part(ScaleInvariance), "pixel",
                                          copy_fields=("scale_copies",)))
_register(_MODIFIERS, "admix", ModifierEntry(AdmixSettings, _part(Admix), "pixel",
                                          copy_fields=("admix_copies", "admix_mixes")))
_register(_MODIFIERS, "ssa", ModifierEntry(SSASettings, _part(SpectrumSimulation), "pixel",
                                          copy_fields=("ssa_copies",)))
_register(_MODIFIERS, "di", ModifierEntry(DISettings, lambda m, b: DiverseInputs(m), "geometry"))
_register(_MODIFIERS, "tdi", ModifierEntry(TDISettings, _part(TASSDiverseInputs), "geometry"))
_register(_MODIFIERS, "ds", ModifierEntry(DSSettings, _part(DynamicScaling), "geometry"))
_register(_MODIFIERS, "bsr", ModifierEntry(BSRSettings, _part(BlockShuffleRotation), "geometry",
                                          copy_fields=("bsr_copies",)))
_register(_MODIFIERS, "blur", ModifierEntry(BlurSettings, _part(InputBlur), "filter"))
_register(_MODIFIERS, "ti", ModifierEntry(TISettings, lambda m, b: TranslationInvariant(m), "grad"))
_register(_MODIFIERS, "targeted", ModifierEntry(
    TargetedSettings, lambda m, b: core.TargetSpec(m.target_rule, m.target_class), "target"
))

ATTACKS: Mapping[str, AttackEntry] = MappingProxyType(_ATTACKS)
MODIFIERS: Mapping[str, ModifierEntry] = MappingProxyType(_MODIFIERS)
MODIFIER_ORDER = ("mi", "ni", "vt", "si", "admix", "ssa", "di", "tdi", "ds", "bsr", "blur", "ti", "targeted")
#: The combinations attacks.md lists (plus NI and the classification transfer family on the bases
#: the issue names), which tests and the speed benchmark run besides ATTACKS.
LISTED_COMBINATIONS = ("transegpgd+mi", "transegpgd+ni", "transegpgd+di", "transegpgd+ti", "transegpgd+mi+di+ti",
                       "segpgd+mi", "pgd+mi+di+ti", "transegpgd+mi+si", "segpgd+vt+ssa", "bim+ni+si", "bim+mi+vt",
                       "pgd+admix", "pgd+ds", "pgd+bsr", "segpgd+ds", "pgd+targeted", "tsallispgd+mi",
                       "apgd+mi")


class Attack:
    """A built attack: ``attack(model, images, labels, generator=None) -> Tensor``.

    It stores no model and no per-call state. Attributes: ``name`` (canonical), ``settings``
    (:class:`AttackSettings`), ``to_dict()`` (flat resolved settings), ``settings_hash`` (12 hex),
    ``uses_labels`` (False for a label-free attack).
    """

    def __init__(self, name: str, settings: AttackSettings, runner: Callable, uses_labels: bool = True) -> None:
        self.name = name
        self.settings = settings
        self._runner = runner
        self.uses_labels = uses_labels

    def __call__(
        self,
        model: core.Model | Sequence[core.Model],
        images: Tensor,
        labels: Tensor,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
    ) -> Tensor:
        """Attack ``images`` (N, C, H, W) in [0, 1] with ``labels`` (N, H, W) against ``model``.

        ``model`` may be a list / tuple / ``nn.ModuleList`` of models (an ensemble, see the
        ``ensemble`` setting). Returns a new detached tensor like ``images``.
        """
        return self._runner(model, images, labels, generator)

    def to_dict(self) -> dict[str, Any]:
        return self.settings.to_dict()

    @property
    def settings_hash(self) -> str:
        return self.settings.settings_hash()

    def __repr__(self) -> str:
        return f"Attack({self.name!r}, hash={self.settings_hash})"


def base_name(name: str) -> str:
    """The base attack of a (possibly ``+``-joined) name; ConfigError for an invalid name."""
    return _parse(name)[0]


def copy_settings(name: str, count: int) -> dict[str, int]:
    """Settings that set every copy, sample and mix count of ``name``'s modifiers (SI, Admix, SSA, BSR,
    VT: their ``copy_fields``) to ``count``: the same attack with fewer source passes per step."""
    return {field: count for mod in name.split("+")[1:] for field in MODIFIERS[mod].copy_fields}


def _parse(name: str) -> tuple[str, list[str]]:
    if not isinstance(name, str) or not name:
        raise ConfigError(f"attack name {name!r}: must be a non-empty string")
    base, *mods = name.split("+")
    if base not in ATTACKS:
        raise ConfigError(f"attack name {name!r}: unknown base {base!r}; valid: {', '.join(ATTACKS)}")
    entry = ATTACKS[base]
    for mod in mods:
        if mod not in MODIFIERS:
            raise ConfigError(f"attack name {name!r}: unknown modifier {mod!r}; valid: {', '.join(MODIFIERS)}")
    if mods and not entry.accepts_modifiers:
        raise ConfigError(
            f"attack name {name!r}: {base!r} takes no modifiers; use an iterative base such as 'bim+mi+di' "
            "and pass alpha / steps"
        )
    if len(set(mods)) != len(mods):
        raise ConfigError(f"attack name {name!r}: a modifier appears twice")
    for mod in mods:
        clash = [m for m in MODIFIERS[mod].excludes if m in mods]
        if clash:
            raise ConfigError(f"attack name {name!r}: {mod!r} and {clash[0]!r} are mutually exclusive")
    for slot in ("pixel", "geometry", "filter"):
        used = [m for m in mods if MODIFIERS[m].kind == slot]
        if len(used) > 1:
            raise ConfigError(f"attack name {name!r}: {used[0]!r} and {used[1]!r} are both {slot} transforms; "
                              "an attack has at most one of each")
    if "targeted" in mods and entry.targeted_loss is None:
        with_mode = ", ".join(b for b, e in ATTACKS.items() if e.targeted_loss is not None)
        raise ConfigError(f"attack name {name!r}: {base!r} has no targeted mode; bases with one: {with_mode}")
    if entry.make_feature_loss is not None:
        geometry = [m for m in mods if MODIFIERS[m].kind in ("geometry", "filter")]
        if geometry:
            raise ConfigError(f"attack name {name!r}: {base!r} compares features position by position, so it "
                              f"takes no geometry transform or filter ({geometry[0]!r})")
    if entry.make_image_loss is not None:
        geometry = [m for m in mods if MODIFIERS[m].kind in ("geometry", "filter")]
        if geometry:
            raise ConfigError(f"attack name {name!r}: {base!r} keeps per-pixel regions across steps, so it "
                              f"takes no geometry transform or filter ({geometry[0]!r})")
    return base, sorted(mods, key=MODIFIER_ORDER.index)


def _route(canonical: str, entry: AttackEntry, classes: list[type], settings: Mapping[str, Any]) -> list[dict]:
    """Each keyword to the one settings class that declares it."""
    routed: list[dict[str, Any]] = [dict(entry.defaults)] + [{} for _ in classes[1:]]
    for key, value in settings.items():
        owners = [i for i, cls in enumerate(classes) if key in {f.name for f in dataclasses.fields(cls)}]
        if not owners:
            valid = sorted({f.name for cls in classes for f in dataclasses.fields(cls)})
            raise ConfigError(f"attack {canonical!r}: unknown setting {key!r}; valid: {', '.join(valid)}")
        if len(owners) > 1:
            raise ConfigError(f"attack {canonical!r}: setting {key!r} is ambiguous between parts")
        if key in entry.fixed and value != entry.fixed[key]:
            raise ConfigError(f"{key}={value!r}: attack {canonical!r} requires {key}={entry.fixed[key]!r}")
        routed[owners[0]][key] = value
    return routed


def build_attack(name: str, /, **settings: Any) -> Attack:
    """Build an attack from its registry name and keyword settings.

    Each keyword goes to the settings dataclass that declares it (base or modifier); unknown or
    ambiguous keywords raise ConfigError naming the key and the valid names.

    Example:
        >>> attack = build_attack("transegpgd+mi+di", eps=8 / 255, steps=20, decay=1.0)
        >>> attack.name, attack.settings_hash
    """
    base, mods = _parse(name)
    entry = ATTACKS[base]
    canonical = "+".join([base, *mods])
    mod_names = list(entry.preset_modifiers) + mods
    classes = [entry.settings_cls] + [MODIFIERS[m].settings_cls for m in mod_names]
    routed = _route(canonical, entry, classes, settings)
    base_settings = entry.settings_cls(**routed[0])
    mod_settings = tuple(cls(**kw) for cls, kw in zip(classes[1:], routed[1:]))
    parts: dict[str, Any] = {"grad": [], "pixel": None, "geometry": None, "filter": None, "target": None}
    for mod, ms in zip(mod_names, mod_settings):
        part = MODIFIERS[mod].make_part(ms, base_settings)
        if MODIFIERS[mod].kind == "grad":
            parts["grad"].append(part)
        else:
            parts[MODIFIERS[mod].kind] = part
    if parts["filter"] is not None:  # the core has no slot after the geometry transform: compose them
        parts["geometry"] = Blurred(parts["geometry"], parts["filter"])
    if parts["target"] is not None and entry.targeted_loss(base_settings) is None:
        raise ConfigError(f"attack {canonical!r}: this configuration of {base!r} has no targeted mode")

    def make_plan(s: Any, loss: PixelLoss | None = None) -> core.Plan:
        targeted = parts["target"] is not None
        return core.Plan(
            settings=s,
            loss=loss if loss is not None else (entry.targeted_loss(s) if targeted else entry.make_loss(s)),
            feature_loss=entry.make_feature_loss(s) if entry.make_feature_loss else None,
            image_loss=entry.make_image_loss(s) if entry.make_image_loss else None,
            loss_features=entry.loss_features(s),
            feature_layer=getattr(s, "layer", None),
            needs_clean_logits=entry.needs_clean_logits(s),
            pixel_transform=parts["pixel"],
            input_transform=parts["geometry"],
            grad_transforms=tuple(parts["grad"]),
            step_rule=entry.make_rule(s),
            target=parts["target"] if targeted else (entry.target(s) if entry.target else None),
        )

    runner = _runner(entry, base_settings, make_plan)
    return Attack(canonical, AttackSettings(canonical, base_settings, mod_settings), runner, entry.uses_labels)


def _runner(entry: AttackEntry, s: Any, make_plan: Callable) -> Callable:
    """One core run, APGD's radius stages, or SEA's worst case over its losses."""
    if entry.kind == "single":
        return runners.Single(make_plan(s))

    def stages(loss: PixelLoss | None) -> Callable:
        if s.radius_schedule == "constant":
            return runners.Single(make_plan(s, loss))
        return runners.RadiusStages(lambda eps, steps: make_plan(runners.with_budget(s, eps, steps), loss),
                                    s.eps, s.steps)

    if entry.kind == "apgd":
        return stages(None)
    members = [stages(functools.partial(sea_loss, loss=loss) if loss != "ce" else ce_loss)
               for loss in s.sea_losses.split(",")]
    return runners.WorstCase(members, s.ignore_index)
