"""``build_attack``: a registry name and keyword settings -> a callable :class:`Attack`.

The name is parsed by the registry (base + modifiers in canonical order); each keyword goes to the one
settings dataclass that declares it; the parts are composed into the core's :class:`~benchmark.attacks.core.Plan`
and run once (``single``), over APGD's radius stages (``apgd``) or as SEA's worst case (``sea``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from benchmark.attacks import core, runners
from benchmark.attacks.entries import AttackEntry
from benchmark.attacks.losses.ce import ce_loss
from benchmark.attacks.losses.sea import sea_loss
from benchmark.attacks.modifiers.blur import Blurred
from benchmark.attacks.parts import PixelLoss
from benchmark.attacks.registry import ATTACKS, MODIFIERS, parse
from benchmark.attacks.settings import AttackSettings
from benchmark.errors import ConfigError


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
    base, mods = parse(name)
    entry = ATTACKS[base]
    canonical = "+".join([base, *mods])
    mod_names = tuple(entry.preset_modifiers) + tuple(mods)
    classes = [entry.settings_cls] + [MODIFIERS[m].settings_cls for m in mod_names]
    routed = _route(canonical, entry, classes, settings)
    base_settings = entry.settings_cls(**routed[0])
    mod_settings = tuple(cls(**kw) for cls, kw in zip(classes[1:], routed[1:]))
    parts: dict[str, Any] = {"grad": [], "pixel": None, "geometry": None, "filter": None, "target": None}
    for mod, ms in zip(mod_names, mod_settings):
        made = MODIFIERS[mod].make_part(ms, base_settings)
        if MODIFIERS[mod].kind == "grad":
            parts["grad"].append(made)
        else:
            parts[MODIFIERS[mod].kind] = made
    if parts["filter"] is not None:  # the core has no slot after the geometry transform: compose them
        parts["geometry"] = Blurred(parts["geometry"], parts["filter"])
    targeted = parts["target"] is not None
    if targeted and entry.targeted_loss(base_settings) is None:
        raise ConfigError(f"attack {canonical!r}: this configuration of {base!r} has no targeted mode")

    def make_plan(s: Any, loss: PixelLoss | None = None) -> core.Plan:
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

    revision = max([entry.revision(base_settings)]
                   + [MODIFIERS[m].revision(ms, mod_names) for m, ms in zip(mod_names, mod_settings)])
    runner = _runner(entry, base_settings, make_plan)
    attack_settings = AttackSettings(canonical, base_settings, mod_settings, revision=revision)
    return Attack(canonical, attack_settings, runner, entry.uses_labels)


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
