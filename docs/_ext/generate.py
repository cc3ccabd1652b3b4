"""Write the generated reference pages of the documentation into a folder (``docs/_generated/``).

Run by the ``benchdocs`` Sphinx extension (``docs/_ext/benchdocs.py``) in a fresh interpreter at every
build, so the pages cannot drift from the code:

- ``cli.md``: ``benchmark --help`` and ``benchmark <command> --help`` for every command of
  :data:`benchmark.cli.COMMANDS`, each taken from the command's own parser;
- ``config-<group>.txt``: the options of each configuration group, cut from ``benchmark run --help``;
- ``attacks.md``: the base-attack and modifier tables of the registry (:func:`benchmark.attack_tools.rows`);
- ``schema.md``: every dataclass of ``results.json`` and of a leaderboard entry: JSON keys, types,
  defaults and docstrings.

Usage: ``python docs/_ext/generate.py OUT_DIR``. A file is rewritten only when its text changes, so an
incremental ``make docs`` rebuilds only what changed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import io
import re
import sys
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: help texts are formatted at this width (the extension also sets COLUMNS for the child process)
WIDTH = 100


def _write(out: Path, name: str, text: str) -> None:
    path = out / name
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _help(argv: list[str]) -> str:
    """What ``benchmark ARGV`` prints (its exit status must be 0)."""
    from benchmark.cli import main

    buffer = io.StringIO()
    status: object = None
    with contextlib.redirect_stdout(buffer):
        try:
            status = main(argv)
        except SystemExit as stop:  # argparse's --help
            status = stop.code
    if status not in (0, None):
        raise RuntimeError(f"benchmark {' '.join(argv)} exited with {status}")
    return buffer.getvalue().rstrip() + "\n"


def _fence(text: str, language: str = "text") -> str:
    ticks = "````" if "```" in text else "```"
    return f"{ticks}{language}\n{text.rstrip()}\n{ticks}\n"


def cli_page() -> tuple[str, str]:
    """The command reference (Markdown) and the text of ``benchmark run --help``."""
    from benchmark.cli import COMMANDS

    parts = ["## `benchmark`\n", "`benchmark --help`:\n", _fence(_help(["--help"]))]
    run_help = ""
    for name, (summary, _) in COMMANDS.items():
        text = _help([name, "--help"])
        if name == "run":
            run_help = text
        parts += [f"## `benchmark {name}`\n", f"{summary[0].upper()}{summary[1:]}.\n",
                  f"`benchmark {name} --help`:\n", _fence(text)]
    return "\n".join(parts), run_help


#: the configuration groups of ``benchmark run`` in the order of the reference page
GROUPS = ("data", "model", "attack", "results", "logger", "wandb", "progress", "trainer")


def config_groups(run_help: str) -> dict[str, str]:
    """Each group's block of option lines from ``benchmark run --help`` (its title line first)."""
    blocks = [b for b in re.split(r"\n\s*\n(?=\S)", run_help.split("\noptions:\n", 1)[-1]) if b.strip()]
    blocks[0] = "options:\n" + blocks[0]
    out = {}
    for group in GROUPS:
        flag = f"--{group}."
        if group == "logger":  # top-level options, before --wandb.*
            lines = run_help.split("\noptions:\n", 1)[-1].splitlines()
            start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("--logger "))
            end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith(" " * 8))
            out[group] = "\n".join(lines[start:end]) + "\n"
            continue
        if group == "wandb":  # the rest of the top-level options
            lines = blocks[0].splitlines()
            start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("--wandb."))
            out[group] = "\n".join(lines[start:]) + "\n"
            continue
        found = [b for b in blocks if f"  {flag}" in b and not b.startswith("options:")]
        if len(found) != 1:
            raise RuntimeError(f"benchmark run --help: {len(found)} option groups hold {flag}")
        out[group] = found[0].rstrip() + "\n"
    return out


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _number(key: str, value: object) -> str:
    """A default as a YAML config would write it (``null``, ``true``; budgets in 1/255 levels)."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, float):
        levels = value * 255
        if key in ("eps", "alpha") and value > 0 and abs(levels - round(levels)) < 1e-9:
            return f"{round(levels)}/255"
        return f"{value:.4g}"
    return str(value)


def _defaults(defaults: dict) -> str:
    return ", ".join(f"`{k}` {_number(k, v)}" for k, v in defaults.items()) or "—"


def attacks_page() -> str:
    from benchmark.attack_tools import rows

    records = rows()
    head = ("| name | paper | defaults | grad passes per step | origin |\n"
            "|---|---|---|---:|---|\n")
    bases = [r for r in records if r["type"] == "base"]
    modifiers = [r for r in records if r["type"] != "base"]
    out = ["## Base attacks\n",
           f"{len(bases)} base attacks. *Defaults* are the registry's defaults and the attack's own settings "
           "beyond the shared iterative ones (`eps`, `steps`, `alpha`, `random_start`, ...); a run's track "
           "(ε, T, α) overrides `eps`, `steps` and `alpha`. *Passes per step*: source forward passes with an "
           "input backward, per image, counted by `benchmark.attacks.count_passes` at the defaults.\n",
           head + "".join(f"| `{r['name']}` | {_cell(r['paper'])} | {_cell(_defaults(r['defaults']))} | "
                          f"{r['passes_per_step']} | {r['origin']} |\n" for r in bases),
           "## Modifiers\n",
           f"{len(modifiers)} modifiers, joined to a base with `+`; the slot is in brackets. *Passes per step* "
           "are those of `pgd+<modifier>` at the defaults.\n",
           head.replace("| name |", "| name (slot) |")
           + "".join(f"| `{r['name']}` ({r['type'].removeprefix('modifier (').rstrip(')')}) | {_cell(r['paper'])} "
                     f"| {_cell(_defaults(r['defaults']))} | {r['passes_per_step']} | {r['origin']} |\n"
                     for r in modifiers)]
    return "\n".join(out)


def _dataclasses_of(module) -> list[type]:
    return [obj for _, obj in inspect.getmembers(module, inspect.isclass)
            if dataclasses.is_dataclass(obj) and obj.__module__ == module.__name__]


def _nested(cls: type) -> list[type]:
    hints = typing.get_type_hints(cls)
    found = []

    def walk(tp: object) -> None:
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            found.append(tp)
        for arg in typing.get_args(tp):
            walk(arg)

    for f in dataclasses.fields(cls):
        walk(hints[f.name])
    return found


def schema_classes() -> list[type]:
    """RunResult, then LeaderboardEntry, then every dataclass they hold (breadth first), then the other
    dataclasses of the result modules."""
    from benchmark.results import entry, info, records, schema

    order: list[type] = []
    queue = [schema.RunResult, entry.LeaderboardEntry]
    while queue:
        cls = queue.pop(0)
        if cls not in order:
            order.append(cls)
            queue += _nested(cls)
    for module in (schema, info, records, entry):
        order += [cls for cls in _dataclasses_of(module) if cls not in order]
    return order


def schema_page() -> str:
    from benchmark.results.codec import OMIT_DEFAULT, json_key
    from benchmark.results.schema import SCHEMA_VERSION

    classes = schema_classes()
    names = {cls.__name__ for cls in classes}

    def typed(text: str) -> str:
        text = _cell(text)
        return re.sub(r"\b([A-Z]\w+)\b", lambda m: f"[{m.group(1)}](#{m.group(1).lower()})"
                      if m.group(1) in names else m.group(1), text)

    out = [f"`schema_version` of the files this code writes: **{SCHEMA_VERSION}**.\n"]
    for cls in classes:
        where = f"{cls.__module__}.{cls.__qualname__}"
        doc = inspect.getdoc(cls) or ""
        out += [f"## {cls.__name__}\n", f"`{where}`\n"]
        if doc:
            out.append(_fence(doc, "{eval-rst}"))
        rows = ["| JSON key | type | default |", "|---|---|---|"]
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                default = f"`{f.default!r}`"
                if f.metadata.get(OMIT_DEFAULT):
                    default += " (left out of the file while it holds this value)"
            elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                default = f"`{f.default_factory()!r}`"  # type: ignore[misc]
            else:
                default = "required"
            key = json_key(f)
            name = f"`{key}`" + (f" (Python: `{f.name}`)" if key != f.name else "")
            rows.append(f"| {name} | {typed(str(f.type))} | {_cell(default)} |")
        out.append("\n".join(rows) + "\n")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.split("\n\n")[0] + "\nusage: generate.py OUT_DIR", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    cli, run_help = cli_page()
    _write(out, "cli.md", cli)
    for group, text in config_groups(run_help).items():
        _write(out, f"config-{group}.txt", text)
    _write(out, "attacks.md", attacks_page())
    _write(out, "schema.md", schema_page())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
