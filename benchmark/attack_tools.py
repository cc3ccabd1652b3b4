"""``benchmark attacks`` (every base and modifier: paper, defaults, passes per step, origin) and
``benchmark check-attack NAME`` (the conformance check, :mod:`benchmark.attacks.conformance`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from benchmark.errors import ConfigError

PLUGINS_HELP = ("attack plugin files or modules to load first (path/to/my_attack.py, my_pkg.attacks); installed "
                "packages' transegpgd_bench.attacks entry points are always loaded")


def _origin_text(record: dict[str, Any] | None) -> str:
    if record is None:
        return "built-in"
    version = f" {record['distribution']} {record['version']}" if record.get("distribution") else ""
    return f"plugin {record['import']}{version}"


def _own_defaults(cls: type, skip: set[str]) -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(cls) if f.name not in skip}


def _per_step(name: str) -> str:
    from benchmark.attacks import build_attack, count_passes

    try:
        attack = build_attack(name)
        passes = count_passes(name)
    except ConfigError:
        return "-"
    steps = attack.settings.base.steps
    value = passes.grad / steps
    return f"{value:g}" if value == int(value) else f"{value:.2f}"


def rows() -> list[dict[str, Any]]:
    """One record per registered base and modifier, in listing order."""
    from benchmark.attacks import ATTACKS, MODIFIERS, IterativeSettings
    from benchmark.attacks.registry import origin

    core = {f.name for f in dataclasses.fields(IterativeSettings)}
    out = []
    for name, entry in ATTACKS.items():
        defaults = {**dict(entry.defaults), **_own_defaults(entry.settings_cls, core | set(entry.defaults))}
        if entry.preset_modifiers:
            defaults = {"modifiers": "+".join(entry.preset_modifiers), **defaults}
        out.append({"name": name, "type": "base", "paper": entry.paper, "defaults": defaults,
                    "passes_per_step": _per_step(name), "origin": _origin_text(origin(name))})
    for name, entry in MODIFIERS.items():
        probe = f"pgd+{name}"
        out.append({"name": name, "type": f"modifier ({entry.kind})", "paper": entry.paper,
                    "defaults": _own_defaults(entry.settings_cls, set()),
                    "passes_per_step": _per_step(probe), "origin": _origin_text(origin(name))})
    return out


def _value(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def attacks_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="benchmark attacks", description="every registered base attack and "
                                     "modifier: its paper, defaults, source passes per step (a modifier's: on pgd) "
                                     "and origin (built-in or plugin)")
    parser.add_argument("--plugins", nargs="*", default=[], metavar="PLUGIN", help=PLUGINS_HELP)
    parser.add_argument("--json", action="store_true", help="print the records as JSON")
    args = parser.parse_args(argv)
    from benchmark.plugins import load_attack_plugins

    load_attack_plugins(args.plugins)
    records = rows()
    if args.json:
        print(json.dumps(records, indent=2, default=str))
        return 0
    width = max(len(r["name"]) for r in records)
    kind = max(len(r["type"]) for r in records)
    print(f"{'name'.ljust(width)}  {'type'.ljust(kind)}  passes/step  origin")
    for r in records:
        print(f"{r['name'].ljust(width)}  {r['type'].ljust(kind)}  {r['passes_per_step'].rjust(11)}  {r['origin']}")
        print(f"{''.ljust(width)}  {r['paper']}")
        defaults = ", ".join(f"{k}={_value(v)}" for k, v in r["defaults"].items())
        if defaults:
            print(f"{''.ljust(width)}  defaults: {defaults}")
    return 0


def _parse_setting(text: str) -> tuple[str, Any]:
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {text!r}: must be KEY=VALUE (e.g. steps=5)")
    return key, yaml.safe_load(value)


def check_attack_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="benchmark check-attack", description="run the invariants every built-in "
                                     "attack is held to (eps-ball, model and RNG untouched, determinism, batch "
                                     "independence, ignored pixels, pass count) on tiny models; exit 1 if one fails")
    parser.add_argument("name", help="attack name, modifiers joined with + (myattack+mi+di)")
    parser.add_argument("--plugins", nargs="*", default=[], metavar="PLUGIN", help=PLUGINS_HELP)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", dest="settings",
                        help="attack settings (YAML values), e.g. --set steps=5 decay=0.5")
    args = parser.parse_args(argv)
    from benchmark.attacks.conformance import check_attack, table
    from benchmark.plugins import load_attack_plugins

    load_attack_plugins(args.plugins)
    checks = check_attack(args.name, **dict(_parse_setting(s) for s in args.settings))
    print(table(args.name, checks))
    failed = [c.name for c in checks if c.holds is False]
    print(f"{len(failed)} of {len(checks)} checks fail: {', '.join(failed)}" if failed else
          f"all {len(checks)} checks hold")
    return 1 if failed else 0
