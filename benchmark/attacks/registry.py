"""The attack registry: declare, collect, compose, build. ``build_attack`` is the one public entry point.

Every method lives whole in one file, ``bases/<name>.py`` or ``modifiers/<name>.py``: its settings
dataclass, its part (loss, transform) and its declaration, a module-level ``METHODS`` tuple of
:class:`~benchmark.attacks.entries.AttackEntry` / :class:`~benchmark.attacks.entries.ModifierEntry`.
The registry collects the built-ins from :data:`BUILTIN_METHODS` (adding a built-in method is its file
plus one line there) and users' plugins through :func:`register_module`, which checks a declaration
against the same contract before anything of it is registered.

``ATTACKS`` and ``MODIFIERS`` are read-only views; registering a name twice is an error. Any iterative
base joins modifiers with ``+`` (``transegpgd+mi+di+ti``, ``segpgd+vt+ssa``). Modifier slots: gradient
transforms (any number), at most one pixel transform, one geometry transform and one filter, and the
target mode. The canonical name orders modifiers as they were registered (:func:`modifier_order`);
the execution order is fixed by the core whatever the spelling.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Mapping
from types import MappingProxyType, ModuleType
from typing import Any

from benchmark.attacks.entries import (
    MODIFIER_KINDS,
    RUN_KINDS,
    AttackEntry,
    ModifierEntry,
)
from benchmark.attacks.settings import Flat, IterativeSettings
from benchmark.errors import ConfigError

#: The built-in method modules, in listing order (``benchmark attacks`` and the canonical modifier order).
BUILTIN_METHODS = (
    "bases.pgd", "bases.segpgd", "bases.cospgd", "bases.transegpgd", "bases.tsallispgd", "bases.dag", "bases.apgd",
    "bases.sea", "bases.fspgd", "bases.rppgd", "bases.fgsm_presets", "bases.tass",
    "modifiers.momentum", "modifiers.vt", "modifiers.si", "modifiers.admix", "modifiers.ssa", "modifiers.di",
    "modifiers.tdi", "modifiers.ds", "modifiers.bsr", "modifiers.blur", "modifiers.ti", "modifiers.targeted",
)
BUILTIN = "built-in"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

_ATTACKS: dict[str, AttackEntry] = {}
_MODIFIERS: dict[str, ModifierEntry] = {}
_ORIGINS: dict[str, dict[str, Any] | None] = {}  # name -> None (built-in) or the plugin's provenance
_MODULES: dict[str, tuple[str, ...]] = {}  # module name -> the names it registered
ATTACKS: Mapping[str, AttackEntry] = MappingProxyType(_ATTACKS)
MODIFIERS: Mapping[str, ModifierEntry] = MappingProxyType(_MODIFIERS)


def _contract(entry: Any) -> str | None:
    """What breaks the declaration contract, or None."""
    if not isinstance(entry, (AttackEntry, ModifierEntry)):
        return f"METHODS holds {type(entry).__name__}, not an AttackEntry or ModifierEntry"
    name = entry.name
    if not isinstance(name, str) or not _NAME.match(name):
        return f"name {name!r} must be lowercase letters, digits and '_', starting with a letter"
    if name in _ATTACKS or name in _MODIFIERS:
        other = _ORIGINS.get(name)
        owner = f"the {BUILTIN} " if other is None else f"plugin {other['import']!r}'s "
        return f"name {name!r} clashes with {owner}{'attack' if name in _ATTACKS else 'modifier'} {name!r}"
    if not isinstance(entry.paper, str) or not entry.paper.strip():
        return f"{name!r} gives no paper (title, authors, arXiv id)"
    base_cls = IterativeSettings if isinstance(entry, AttackEntry) else Flat
    cls = entry.settings_cls
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls) and issubclass(cls, base_cls)
            and cls.__dataclass_params__.frozen):  # type: ignore[attr-defined]
        return f"{name!r}: settings_cls must be a frozen dataclass subclassing {base_cls.__name__}"
    if isinstance(entry, ModifierEntry):
        if entry.kind not in MODIFIER_KINDS:
            return f"{name!r}: kind {entry.kind!r} must be one of {', '.join(MODIFIER_KINDS)}"
        if not callable(entry.make_part):
            return f"{name!r}: make_part is not callable"
        taken = {f.name for e in (IterativeSettings, *(m.settings_cls for m in _MODIFIERS.values()))
                 for f in dataclasses.fields(e)}
        clash = sorted({f.name for f in dataclasses.fields(cls)} & taken)
        if clash:
            return f"{name!r}: setting {clash[0]!r} is already a setting of the core or another modifier"
        return None
    if entry.kind not in RUN_KINDS:
        return f"{name!r}: kind {entry.kind!r} must be one of {', '.join(RUN_KINDS)}"
    if not callable(entry.make_loss):
        return f"{name!r}: make_loss is not callable"
    try:
        settings = cls(**entry.defaults)
    except (ConfigError, TypeError) as err:
        return f"{name!r}: its defaults do not build its settings ({err})"
    if entry.make_loss(settings) is None and entry.make_feature_loss is None and entry.make_image_loss is None \
            and entry.kind == "single":
        return f"{name!r}: make_loss gives None and no feature or image loss is declared"
    return None


def register_module(module: ModuleType, origin: dict[str, Any] | None = None) -> tuple[str, ...]:
    """Register every entry of ``module.METHODS``; ``origin`` None marks built-ins, else the plugin's
    provenance (``benchmark.plugins.origin``). All or nothing: a broken declaration registers none of
    the module's entries. Registering the same module again is a no-op. Returns the names."""
    spec = origin["import"] if origin else module.__name__
    if module.__name__ in _MODULES:
        return _MODULES[module.__name__]
    methods = getattr(module, "METHODS", None)
    where = "built-in" if origin is None else "plugin"
    if not isinstance(methods, tuple) or not methods:
        raise ConfigError(f"{where} {spec!r}: declares no METHODS tuple of AttackEntry / ModifierEntry")
    names = [getattr(entry, "name", None) for entry in methods]
    if len(set(map(str, names))) != len(names):
        raise ConfigError(f"{where} {spec!r}: a name appears twice in METHODS")
    for entry in methods:
        problem = _contract(entry)
        if problem:
            raise ConfigError(f"{where} {spec!r}: {problem}")
    for entry in methods:
        (_ATTACKS if isinstance(entry, AttackEntry) else _MODIFIERS)[entry.name] = entry
        _ORIGINS[entry.name] = origin
    for entry in methods if origin is not None else ():  # a plugin preset names existing modifiers
        missing = [m for m in getattr(entry, "preset_modifiers", ()) if m not in _MODIFIERS]
        if missing:
            unregister(names)
            raise ConfigError(f"{where} {spec!r}: {entry.name!r} presets unknown modifier {missing[0]!r}")
    _MODULES[module.__name__] = tuple(names)
    return tuple(names)


def unregister(names: Any) -> None:
    """Remove ``names`` and forget the modules left without a registered name (tests restore the
    registry with it)."""
    for name in names:
        _ATTACKS.pop(name, None)
        _MODIFIERS.pop(name, None)
        _ORIGINS.pop(name, None)
    for module, registered in list(_MODULES.items()):
        if not any(name in _ORIGINS for name in registered):
            del _MODULES[module]


def origin(name: str) -> dict[str, Any] | None:
    """The provenance of a registered base or modifier: None for a built-in, else its plugin's record."""
    if name not in _ORIGINS:
        raise ConfigError(f"unknown attack part {name!r}")
    return _ORIGINS[name]


def builtin_parts() -> frozenset[str]:
    """The names of the built-in bases and modifiers."""
    return frozenset(name for name, record in _ORIGINS.items() if record is None)


def attack_origins(name: str) -> tuple[dict[str, Any], ...]:
    """The distinct plugin provenance records behind an attack name (``myattack+mi`` -> one), in order."""
    base, mods = parse(name)
    found: dict[str, dict[str, Any]] = {}
    for part_name in (base, *ATTACKS[base].preset_modifiers, *mods):
        record = _ORIGINS.get(part_name)
        if record is not None:
            found.setdefault(record["import"], record)
    return tuple(found.values())


def modifier_order() -> tuple[str, ...]:
    """The canonical order of modifiers in a name: registration order."""
    return tuple(_MODIFIERS)


def base_name(name: str) -> str:
    """The base attack of a (possibly ``+``-joined) name; ConfigError for an invalid name."""
    return parse(name)[0]


def copy_settings(name: str, count: int) -> dict[str, int]:
    """Settings that set every copy, sample and mix count of ``name``'s modifiers (SI, Admix, SSA, BSR,
    VT: their ``copy_fields``) to ``count``: the same attack with fewer source passes per step."""
    return {field: count for mod in name.split("+")[1:] for field in MODIFIERS[mod].copy_fields}


def parse(name: str) -> tuple[str, list[str]]:
    """(base, modifiers in canonical order) of a valid name; ConfigError naming what is wrong."""
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
    for slot in ("pixel", "geometry", "filter", "target"):
        used = [m for m in mods if MODIFIERS[m].kind == slot]
        if len(used) > 1:
            raise ConfigError(f"attack name {name!r}: {used[0]!r} and {used[1]!r} are both {slot} transforms; "
                              "an attack has at most one of each")
    if any(MODIFIERS[m].kind == "target" for m in mods) and entry.targeted_loss is None:
        with_mode = ", ".join(b for b, e in ATTACKS.items() if e.targeted_loss is not None)
        raise ConfigError(f"attack name {name!r}: {base!r} has no targeted mode; bases with one: {with_mode}")
    for declared, why in ((entry.make_feature_loss, "compares features position by position"),
                          (entry.make_image_loss, "keeps per-pixel regions across steps")):
        geometry = [m for m in mods if MODIFIERS[m].kind in ("geometry", "filter")]
        if declared is not None and geometry:
            raise ConfigError(f"attack name {name!r}: {base!r} {why}, so it takes no geometry transform or "
                              f"filter ({geometry[0]!r})")
    order = modifier_order()
    return base, sorted(mods, key=order.index)


def _collect_builtins() -> None:
    for module in BUILTIN_METHODS:
        register_module(importlib.import_module(f"benchmark.attacks.{module}"))


_collect_builtins()

#: The combinations attacks.md lists (plus NI and the classification transfer family on the bases
#: the issue names), which tests and the speed benchmark run besides ATTACKS.
LISTED_COMBINATIONS = ("transegpgd+mi", "transegpgd+ni", "transegpgd+di", "transegpgd+ti", "transegpgd+mi+di+ti",
                       "segpgd+mi", "pgd+mi+di+ti", "transegpgd+mi+si", "segpgd+vt+ssa", "bim+ni+si", "bim+mi+vt",
                       "pgd+admix", "pgd+ds", "pgd+bsr", "segpgd+ds", "pgd+targeted", "tsallispgd+mi",
                       "apgd+mi")
