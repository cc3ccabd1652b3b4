"""Reading and writing result files: strict JSON, explicit migrations, atomic writes.

Files are UTF-8 JSON objects with ``schema_version`` first. Reading:

1. parse strictly (duplicate keys, NaN and Infinity are errors);
2. migrate: while the file's ``schema_version`` is older than the current one, apply
   ``MIGRATIONS[v]`` (a pure function raw dict of version v -> raw dict of version v + 1);
   a version without a migration, or newer than this code, is an error;
3. decode against the dataclasses (unknown or missing keys, wrong types: errors naming file and key).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from benchmark.errors import ResultError
from benchmark.fileio import write_atomic
from benchmark.results import codec
from benchmark.results.migrations import result_v1_to_v2
from benchmark.results.schema import SCHEMA_VERSION, RunResult

T = TypeVar("T")
Migration = Callable[[dict[str, Any]], dict[str, Any]]

# RunResult migrations: version v -> function upgrading a raw dict from v to v + 1 (see
# benchmark.results.migrations); add entries here, never edit old ones.
MIGRATIONS: dict[int, Migration] = {1: result_v1_to_v2}


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-standard JSON constant {name}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def load_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a JSON object strictly; ResultError naming the file otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ResultError(f"{path}: cannot read ({err.strerror})") from None
    try:
        raw = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except ValueError as err:
        raise ResultError(f"{path}: invalid JSON ({err})") from None
    if not isinstance(raw, dict):
        raise ResultError(f"{path}: expected a JSON object at the top level")
    return raw


def migrate(raw: dict[str, Any], current: int, migrations: Mapping[int, Migration],
            file: str) -> dict[str, Any]:
    """Bring a raw dict to version ``current`` through ``migrations``; see the module docstring."""
    version = raw.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ResultError(f"{file}: missing key 'schema_version'" if version is None else
                          f"{file}: schema_version: expected an integer, got {version!r}")
    if version > current:
        raise ResultError(f"{file}: schema_version {version} is newer than supported ({current}); "
                          "update the benchmark")
    while version < current:
        if version not in migrations:
            raise ResultError(f"{file}: no migration from schema_version {version}")
        raw = migrations[version](dict(raw))
        if raw.get("schema_version") != version + 1:
            raise ResultError(f"{file}: migration from {version} did not produce version {version + 1}")
        version += 1
    return raw


def read_record(path: str | os.PathLike[str], cls: type[T], current: int,
                migrations: Mapping[int, Migration]) -> T:
    """Load, migrate and strictly decode one record file into ``cls``."""
    raw = migrate(load_json(path), current, migrations, str(path))
    return codec.decode(cls, raw, str(path))


def _dumps(value: Any) -> str:
    """Indented JSON, except that a top-level ``images`` list (per-image audit records, possibly
    hundreds of thousands) is written one compact record per line."""
    dump = lambda v, **kw: json.dumps(v, allow_nan=False, ensure_ascii=False, **kw)  # noqa: E731
    if not (isinstance(value, dict) and value.get("images")):
        return dump(value, indent=2) + "\n"
    head = dump({k: v for k, v in value.items() if k != "images"}, indent=2)
    lines = ",\n".join("    " + dump(record, separators=(",", ":")) for record in value["images"])
    return head[:-2] + ',\n  "images": [\n' + lines + "\n  ]\n}\n"


def write_json_atomic(path: str | os.PathLike[str], value: Any) -> None:
    """Write JSON atomically (:func:`benchmark.fileio.write_atomic`): readers see the old file or the
    complete new one, never a partial one."""
    text = _dumps(value)
    write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))


def result_to_json(result: RunResult) -> dict[str, Any]:
    """The JSON object of ``result``."""
    return codec.encode(result)


def result_from_json(raw: dict[str, Any], file: str = "<results>") -> RunResult:
    """Migrate and strictly decode a parsed results object; ``file`` names it in errors."""
    return codec.decode(RunResult, migrate(raw, SCHEMA_VERSION, MIGRATIONS, file), file)


def write_result(path: str | os.PathLike[str], result: RunResult) -> None:
    """Write ``results.json`` atomically."""
    write_json_atomic(path, result_to_json(result))


def read_result(path: str | os.PathLike[str]) -> RunResult:
    """Read and validate ``results.json`` (ResultError naming the file and key on any problem)."""
    return read_record(path, RunResult, SCHEMA_VERSION, MIGRATIONS)
