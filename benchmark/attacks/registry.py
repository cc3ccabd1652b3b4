"""The attack registries and ``build_attack``, the one public entry point of the attack library.

``ATTACKS`` maps base names (and the FGSM presets) to an :class:`AttackEntry`; ``MODIFIERS`` maps
``mi``, ``ni``, ``di``, ``ti`` to a :class:`ModifierEntry`. Both are filled here at import, are
read-only mappings afterwards, and registering a name twice is an error.

Names: ``fgsm``, ``bim``, ``pgd``, ``segpgd``, ``cospgd``, ``transegpgd``, the presets ``mifgsm``,
``nifgsm``, ``difgsm``, ``tifgsm`` (= ``bim`` plus one modifier, alpha = eps / steps, 10 steps), and
any iterative base joined with modifiers by ``+`` (``transegpgd+mi+di+ti``). The canonical name orders
modifiers mi|ni, di, ti; the execution order is fixed by the core whatever the spelling.
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

from benchmark.attacks import core
from benchmark.attacks.losses.ce import ce_loss
from benchmark.attacks.losses.cospgd import cospgd_loss
from benchmark.attacks.losses.segpgd import segpgd_loss
from benchmark.attacks.losses.transegpgd import needs_clean_logits, transegpgd_loss
from benchmark.attacks.parts import PixelLoss
from benchmark.attacks.settings import (
    AttackSettings,
    DISettings,
    IterativeSettings,
    MomentumSettings,
    SegPGDSettings,
    TISettings,
    TranSegPGDSettings,
)
from benchmark.attacks.transforms.di import DiverseInputs
from benchmark.attacks.transforms.momentum import Momentum
from benchmark.attacks.transforms.ti import TranslationInvariant
from benchmark.errors import ConfigError


@dataclass(frozen=True)
class AttackEntry:
    """A base attack: its settings class, registry defaults and pixel loss.

    Args:
        settings_cls: the frozen settings dataclass.
        make_loss: settings -> pixel loss.
        defaults: registry defaults, applied before the caller's keywords.
        needs_clean_logits: settings -> whether the loss reads the clean source logits.
        accepts_modifiers: False for FGSM (one step) and the presets (already one modifier).
        preset_modifiers: modifiers a preset always has (``mifgsm`` -> ("mi",)).
        fixed: settings the caller may not change (FGSM is one step).
    """

    settings_cls: type[IterativeSettings]
    make_loss: Callable[[Any], PixelLoss]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    needs_clean_logits: Callable[[Any], bool] = lambda settings: False
    accepts_modifiers: bool = True
    preset_modifiers: tuple[str, ...] = ()
    fixed: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModifierEntry:
    """A modifier: its settings class, the part factory, its slot and the modifiers it excludes."""

    settings_cls: type
    make_part: Callable[[Any], Any]
    kind: str  # "grad" or "input"
    excludes: tuple[str, ...] = ()


def _register(table: dict, name: str, entry: Any) -> None:
    if name in table:
        raise ConfigError(f"attack registry: name {name!r} registered twice")
    table[name] = entry


_ATTACKS: dict[str, AttackEntry] = {}
_MODIFIERS: dict[str, ModifierEntry] = {}

_PGD = {"alpha": 2 / 255, "steps": 10, "random_start": True}
_BIM = {"alpha": 2 / 255, "steps": 10, "random_start": False}
_PRESET = {"alpha": None, "steps": 10, "random_start": False}

_register(_ATTACKS, "fgsm", AttackEntry(
    IterativeSettings, lambda s: ce_loss, {"alpha": None, "steps": 1, "random_start": False},
    accepts_modifiers=False, fixed={"steps": 1},
))
_register(_ATTACKS, "bim", AttackEntry(IterativeSettings, lambda s: ce_loss, _BIM))
_register(_ATTACKS, "pgd", AttackEntry(IterativeSettings, lambda s: ce_loss, _PGD))
_register(_ATTACKS, "segpgd", AttackEntry(
    SegPGDSettings, lambda s: functools.partial(segpgd_loss, lambda_offset=s.lambda_offset),
    {**_PGD, "steps": 20},
))
_register(_ATTACKS, "cospgd", AttackEntry(IterativeSettings, lambda s: cospgd_loss, {**_PGD, "steps": 20}))
_register(_ATTACKS, "transegpgd", AttackEntry(
    TranSegPGDSettings, lambda s: functools.partial(transegpgd_loss, settings=s),
    {**_PGD, "steps": 20, "step_schedule": "uniform"}, needs_clean_logits=needs_clean_logits,
))
for _preset, _modifier in (("mifgsm", "mi"), ("nifgsm", "ni"), ("difgsm", "di"), ("tifgsm", "ti")):
    _register(_ATTACKS, _preset, AttackEntry(
        IterativeSettings, lambda s: ce_loss, _PRESET, accepts_modifiers=False, preset_modifiers=(_modifier,),
    ))

_register(_MODIFIERS, "mi", ModifierEntry(MomentumSettings, Momentum, "grad", excludes=("ni",)))
_register(_MODIFIERS, "ni", ModifierEntry(
    MomentumSettings, functools.partial(Momentum, nesterov=True), "grad", excludes=("mi",)
))
_register(_MODIFIERS, "di", ModifierEntry(DISettings, DiverseInputs, "input"))
_register(_MODIFIERS, "ti", ModifierEntry(TISettings, TranslationInvariant, "grad"))

ATTACKS: Mapping[str, AttackEntry] = MappingProxyType(_ATTACKS)
MODIFIERS: Mapping[str, ModifierEntry] = MappingProxyType(_MODIFIERS)
MODIFIER_ORDER = ("mi", "ni", "di", "ti")
#: The combinations attacks.md lists (plus NI), which tests and the speed benchmark run besides ATTACKS.
LISTED_COMBINATIONS = ("transegpgd+mi", "transegpgd+ni", "transegpgd+di", "transegpgd+ti", "transegpgd+mi+di+ti",
                       "segpgd+mi", "pgd+mi+di+ti")


class Attack:
    """A built attack: ``attack(model, images, labels, generator=None) -> Tensor``.

    It stores no model and no per-call state. Attributes: ``name`` (canonical), ``settings``
    (:class:`AttackSettings`), ``to_dict()`` (flat resolved settings), ``settings_hash`` (12 hex).
    """

    def __init__(self, name: str, settings: AttackSettings, plan: core.Plan) -> None:
        self.name = name
        self.settings = settings
        self._plan = plan

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
        return core.run(self._plan, model, images, labels, generator)

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
    return base, sorted(mods, key=MODIFIER_ORDER.index)


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
    routed: list[dict[str, Any]] = [dict(entry.defaults)] + [{} for _ in mod_names]
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
    base_settings = entry.settings_cls(**routed[0])
    mod_settings = tuple(cls(**kw) for cls, kw in zip(classes[1:], routed[1:]))
    grad_parts, input_part = [], None
    for mod, ms in zip(mod_names, mod_settings):
        part = MODIFIERS[mod].make_part(ms)
        if MODIFIERS[mod].kind == "input":
            input_part = part
        else:
            grad_parts.append(part)
    plan = core.Plan(
        settings=base_settings,
        loss=entry.make_loss(base_settings),
        needs_clean_logits=entry.needs_clean_logits(base_settings),
        input_transform=input_part,
        grad_transforms=tuple(grad_parts),
    )
    return Attack(canonical, AttackSettings(canonical, base_settings, mod_settings), plan)
