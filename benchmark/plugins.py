"""Users' code loaded without a fork: attack plugins and model factories, with their provenance.

A *spec* names a module: a path to a ``.py`` file (``path/to/my_attack.py``) or a dotted import name
(``my_pkg.my_module``); an *object spec* adds ``:attribute`` (``my_pkg.models:build_model``,
``path/to/file.py:build``). Every failure is a :class:`~benchmark.errors.ConfigError` with one line
naming the spec and what is wrong, raised before any work.

The provenance of a loaded module (:func:`origin`) is what makes a result that used it verifiable
elsewhere: the spec it was imported by, the installed distribution and its version when there is one,
and the sha256 of each of its source files (every ``.py`` file of a package, else its one file)::

    {"import": "my_pkg.attacks", "distribution": "my-pkg", "version": "0.1.0",
     "sha256": {"my_pkg/attacks.py": "3f1c..."}}

:func:`check_origin` recomputes the digests of the local copy and names the first file that differs.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from benchmark.errors import ConfigError
from benchmark.fileio import sha256_file

#: The entry-point group through which an installed package offers attack plugins; each entry point's
#: value names a module written like a built-in method file.
ATTACK_ENTRY_POINTS = "transegpgd_bench.attacks"


def is_path_spec(spec: str) -> bool:
    """Whether ``spec`` names a file (ends in ``.py`` or holds a path separator) rather than a module."""
    return spec.endswith(".py") or "/" in spec or "\\" in spec


def _path_module_name(path: Path) -> str:
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:10]
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    return f"benchmark_plugin_{stem}_{digest}"


def _import_error_line(spec: str, err: BaseException) -> str:
    """``plugin 'X': failed to import (file.py:12: NameError: name 'y' is not defined)``: the line of the
    user's code (the innermost frame outside this package, Python's library and importlib)."""
    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if "importlib" not in f.filename and "<frozen" not in f.filename]
    if isinstance(err, SyntaxError) and err.filename:
        frames.append(traceback.FrameSummary(err.filename, err.lineno or 0, "<module>"))
    library = (str(Path(traceback.__file__).parent), str(Path(__file__).parent))
    own = [f for f in frames if not f.filename.startswith(library)]
    frame = (own or frames or [None])[-1]
    where = f"{Path(frame.filename).name}:{frame.lineno}: " if frame else ""
    message = str(err).splitlines()[0] if str(err) else ""
    return f"plugin {spec!r}: failed to import ({where}{type(err).__name__}: {message})"


def import_spec(spec: str) -> ModuleType:
    """The module that ``spec`` names, imported once per process (a file is imported under a name
    derived from its absolute path, so the same file is the same module in every worker)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"plugin {spec!r}: must be a path to a .py file or a dotted module name")
    try:
        if is_path_spec(spec):
            path = Path(spec).expanduser().resolve()
            if not path.is_file():
                raise ConfigError(f"plugin {spec!r}: no such file ({path})")
            name = _path_module_name(path)
            if name in sys.modules:
                return sys.modules[name]
            loader_spec = importlib.util.spec_from_file_location(name, path)
            if loader_spec is None or loader_spec.loader is None:
                raise ConfigError(f"plugin {spec!r}: not an importable Python file")
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[name] = module  # dataclasses and pickling look their module up here
            try:
                loader_spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
            return module
        return importlib.import_module(spec)
    except ConfigError:
        raise
    except ModuleNotFoundError as err:
        if err.name and spec.startswith(err.name):
            raise ConfigError(f"plugin {spec!r}: no module named {err.name!r} (not installed, or not on "
                              "sys.path)") from None
        raise ConfigError(_import_error_line(spec, err)) from None
    except Exception as err:  # noqa: BLE001 -- any error of users' code becomes one line
        raise ConfigError(_import_error_line(spec, err)) from None


def load_object(spec: str, what: str = "factory") -> tuple[Any, ModuleType]:
    """``module_spec:attribute`` -> (the attribute, its module)."""
    if not isinstance(spec, str) or ":" not in spec.lstrip("/\\").split("/")[-1]:
        raise ConfigError(f"{what} {spec!r}: must be 'module.name:attribute' or 'path/to/file.py:attribute'")
    module_spec, _, attribute = spec.rpartition(":")
    module = import_spec(module_spec)
    try:
        return getattr(module, attribute), module
    except AttributeError:
        raise ConfigError(f"{what} {spec!r}: module {module_spec!r} has no attribute {attribute!r}") from None


def _source_root(module: ModuleType) -> tuple[Path, list[Path]]:
    """(the folder paths are relative to, the module's source files)."""
    file = Path(getattr(module, "__file__", "") or "")
    if not file.is_file():
        raise ConfigError(f"plugin {module.__name__!r}: has no source file to record")
    if hasattr(module, "__path__"):  # a package: every .py file under it
        return file.parent.parent, sorted(file.parent.rglob("*.py"))
    top = module.__name__.split(".")[0]
    if module.__name__.startswith("benchmark_plugin_") or "." not in module.__name__:
        return file.parent, [file]
    root = file.parent
    for _ in module.__name__.split(".")[1:]:
        root = root.parent
    return (root if (root / top).exists() else file.parent), [file]


def source_digests(module: ModuleType) -> dict[str, str]:
    """``{relative path: sha256}`` of the module's source files (POSIX separators, sorted)."""
    root, files = _source_root(module)
    return {path.relative_to(root).as_posix(): sha256_file(path) for path in files
            if "__pycache__" not in path.parts}


def _distribution(module: ModuleType) -> tuple[str | None, str | None]:
    top = module.__name__.split(".")[0]
    names = importlib.metadata.packages_distributions().get(top) or []
    if not names:
        return None, None
    try:
        return names[0], importlib.metadata.version(names[0])
    except importlib.metadata.PackageNotFoundError:
        return names[0], None


def origin(spec: str, module: ModuleType) -> dict[str, Any]:
    """The provenance record of ``module``, imported by ``spec`` (see the module docstring)."""
    distribution, version = (None, None) if is_path_spec(spec) else _distribution(module)
    return {"import": spec, "distribution": distribution, "version": version, "sha256": source_digests(module)}


def check_origin(recorded: dict[str, Any], module: ModuleType, what: str) -> None:
    """Refuse, in one line naming the file, a local module whose sources differ from ``recorded``."""
    local = source_digests(module)
    for path, digest in sorted(recorded.get("sha256", {}).items()):
        if path not in local:
            raise ConfigError(f"{what} {recorded.get('import')!r}: the recorded source file {path} is missing "
                              "here; re-running it would not reproduce the entry")
        if local[path] != digest:
            raise ConfigError(f"{what} {recorded.get('import')!r}: {path} differs from the recorded source "
                              f"(sha256 {local[path][:12]} here, {digest[:12]} recorded); re-running it would not "
                              "reproduce the entry")
    extra = sorted(set(local) - set(recorded.get("sha256", {})))
    if extra:
        raise ConfigError(f"{what} {recorded.get('import')!r}: {extra[0]} is not among the recorded source files")


def entry_point_specs(group: str = ATTACK_ENTRY_POINTS) -> list[tuple[str, str]]:
    """``(entry point name, module name)`` of every installed entry point of ``group``, sorted by name."""
    return sorted((ep.name, ep.module) for ep in importlib.metadata.entry_points(group=group))


def load_attack_plugins(specs: list[str] | tuple[str, ...] | None = None, entry_points: bool = True) -> list[dict]:
    """Register the attack plugins ``specs`` (``attack.plugins``) and, with ``entry_points``, those every
    installed package offers in :data:`ATTACK_ENTRY_POINTS`; returns their provenance records in order.
    Idempotent: a module loaded before is not registered again. Every problem (a file that does not
    import, a declaration that breaks the contract, a name that clashes) is one ConfigError line."""
    from benchmark.attacks.registry import register_module

    if specs is not None and (isinstance(specs, str) or not isinstance(specs, (list, tuple))):
        raise ConfigError(f"attack.plugins must be a list of files or module names, got {specs!r}")
    named = [(spec, spec) for spec in specs or ()]
    if entry_points:
        named += [(f"{module} (entry point {name!r})", module) for name, module in entry_point_specs()]
    records = []
    for label, spec in named:
        module = import_spec(spec)
        record = origin(spec, module)
        try:
            register_module(module, record)
        except ConfigError as err:
            raise ConfigError(str(err).replace(f"plugin {spec!r}", f"plugin {label!r}", 1)) from None
        records.append(record)
    return records
