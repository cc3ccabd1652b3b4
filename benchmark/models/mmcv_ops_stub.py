"""Stand-in for compiled ``mmcv.ops`` when only mmcv-lite is installed.

mmsegmentation 1.2.2 imports ``mmcv.ops`` without a guard in four modules
(``utils/mask_classification.py``, ``models/utils/point_sample.py``,
``models/decode_heads/san_head.py`` and ``models/losses/focal_loss.py``). mmcv-lite ships the
Python files of ``mmcv/ops`` but not the compiled ``mmcv._ext``, so the real package ``__init__``
fails and mmseg cannot even be imported.

This module registers a ``sys.meta_path`` finder that acts only on the import of ``mmcv.ops``,
and only when ``mmcv._ext`` cannot be found (GPU users with real compiled ops never see it). The
module it creates:

- keeps the real ``mmcv/ops`` directory as its ``__path__``, so pure-Python submodules such as
  ``mmcv.ops.point_sample`` import from the installed files;
- exposes the pure-torch ``point_sample`` (the only op our segmentors need);
- raises ``ModuleNotFoundError`` for every compiled-only name, the one error that mmseg catches
  around its optional heads (``try: from mmcv.ops import X except ModuleNotFoundError``);
- gives ``sigmoid_focal_loss`` -- imported unguarded by mmseg's FocalLoss module -- a placeholder
  that raises ``ModuleNotFoundError`` only when called, so the import of mmseg succeeds and only
  the CUDA focal loss path (never used for evaluation) is unavailable.

Registering the finder imports nothing; ``benchmark/__init__.py`` does it, so every process that
imports ``benchmark`` (spawned DDP workers included) has it before mmseg is loaded. Set
``BENCHMARK_MMCV_OPS_STUB=0`` to switch it off.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types

_TARGET = "mmcv.ops"
_PURE_PYTHON = {"point_sample": "mmcv.ops.point_sample"}
_CALL_TIME_PLACEHOLDERS = ("sigmoid_focal_loss",)


def _compiled_ops_available() -> bool:
    try:
        return importlib.util.find_spec("mmcv._ext") is not None
    except (ImportError, ValueError):
        return False


def _missing(name: str) -> ModuleNotFoundError:
    return ModuleNotFoundError(
        f"mmcv.ops.{name} needs mmcv's compiled extension, which mmcv-lite does not ship "
        "(install full mmcv with CUDA ops to use it)",
        name=f"{_TARGET}.{name}",
    )


def _placeholder(name: str):
    def unavailable(*args, **kwargs):
        raise _missing(name)

    unavailable.__name__ = name
    unavailable.__qualname__ = name
    return unavailable


class _StubModule(types.ModuleType):
    """The ``mmcv.ops`` module object used when compiled ops are absent."""

    __benchmark_stub__ = True

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        if name in _PURE_PYTHON:
            submodule = importlib.import_module(_PURE_PYTHON[name])
            value = getattr(submodule, name)
        elif name in _CALL_TIME_PLACEHOLDERS:
            value = _placeholder(name)
        else:
            raise _missing(name)
        setattr(self, name, value)
        return value


class _StubLoader(importlib.abc.Loader):
    def create_module(self, spec):
        return _StubModule(spec.name)

    def exec_module(self, module):
        module.__doc__ = "benchmark stand-in for compiled mmcv.ops (see benchmark.models.mmcv_ops_stub)"


class MmcvOpsFinder(importlib.abc.MetaPathFinder):
    """Meta-path finder that supplies the stand-in for ``mmcv.ops`` when it is needed."""

    def find_spec(self, fullname, path, target=None):
        if fullname != _TARGET or _compiled_ops_available():
            return None
        real = importlib.machinery.PathFinder.find_spec(fullname, path)
        locations = list(real.submodule_search_locations) if real is not None else []
        spec = importlib.machinery.ModuleSpec(fullname, _StubLoader(), is_package=True)
        spec.submodule_search_locations = locations
        return spec


def install() -> None:
    """Register the finder once, in front of the default finders (idempotent, imports nothing)."""
    if os.environ.get("BENCHMARK_MMCV_OPS_STUB", "1") == "0":
        return
    if not any(isinstance(finder, MmcvOpsFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, MmcvOpsFinder())


def is_active() -> bool:
    """True when the ``mmcv.ops`` in ``sys.modules`` is this stand-in."""
    module = sys.modules.get(_TARGET)
    return bool(getattr(module, "__benchmark_stub__", False))
