"""A restricted unpickler for checkpoint files: data comes back, code never runs (torch and numpy only).

Unpickling can call any importable function: a checkpoint is a program. This unpickler resolves
every global a pickle names through one table, and nothing outside it is ever imported or called:

- **rebuilt for real** (:data:`REBUILT`): tensors, storages, dtypes, sizes and devices (torch's
  own rebuild functions), ``OrderedDict`` and the built-in data types, numpy arrays, scalars and
  dtypes;
- **refused** (:func:`refusal`): globals that execute or reach the system -- ``os``, ``posix``,
  ``subprocess``, ``builtins`` beyond its data types (``eval``, ``exec``, ``__import__``,
  ``getattr``, ``open``, ...), ``importlib``, ``functools``, ``operator``, ``pickle``, torch's and
  numpy's loaders, ...: :class:`RefusedGlobal` names the global and unpickling stops there;
- **inert placeholders** (:class:`Inert`): every other global, e.g. mmengine's ``HistoryBuffer`` or
  ``ConfigDict``, an ``argparse.Namespace``, a model class. A placeholder records the arguments and
  state the pickle gives it and does nothing else: the real class is never imported.

So a placeholder can never run code, whatever it names; refusal exists to say clearly that a file
tried to. ``builtins.getattr`` is the one refused name with a data use: pickles reach methods
through it (mmengine's ``HistoryBuffer`` keeps ``getattr(HistoryBuffer, "min")`` in its state). On
a placeholder it gives another placeholder (``...HistoryBuffer.min``); on anything else it is refused. The checkpoint loader then keeps only the tensors of the weights and refuses a state dict
that holds anything else (:mod:`benchmark.models.checkpoints`).

Use it as the ``pickle_module`` of ``torch.load(..., weights_only=False)``: torch then reads its
containers (zip or legacy) and storages, and every global goes through :meth:`RestrictedUnpickler.find_class`.
"""

from __future__ import annotations

import _compat_pickle
import collections
import functools
import pickle
from types import MappingProxyType
from typing import Any, Mapping

import torch

# Modules (by top-level package) whose globals are refused: they execute, import, or reach files,
# processes or the network. Globals of other modules become inert placeholders.
_REFUSED_PACKAGES = frozenset({
    "os", "posix", "nt", "sys", "subprocess", "importlib", "runpy", "code", "codeop", "shutil",
    "socket", "pickle", "_pickle", "cPickle", "pickletools", "marshal", "types", "ctypes", "functools",
    "operator", "_operator", "pty", "multiprocessing", "threading", "_thread", "webbrowser", "io", "_io",
    "tempfile", "signal", "asyncio", "pdb", "bdb", "timeit", "zipimport", "site", "inspect", "platform",
    "urllib", "http", "ftplib", "smtplib", "requests", "ssl", "select", "selectors", "mmap", "glob",
    "gc", "codecs", "_codecs", "copyreg", "distutils", "setuptools", "pip", "ensurepip",
    "venv", "yaml", "dill", "cloudpickle", "joblib", "builtins", "numpy", "torch",
    "sysconfig", "zipfile", "tarfile", "shelve", "dbm", "sqlite3", "logging", "atexit", "readline",
})  # fmt: skip
# Names refused in any module: the usual ways a pickle reaches code.
_REFUSED_NAMES = frozenset({
    "eval", "exec", "execfile", "compile", "getattr", "setattr", "delattr", "__import__", "open",
    "system", "popen", "spawn", "call", "run", "check_call", "check_output", "load", "loads", "apply",
    "globals", "locals", "vars", "input", "breakpoint",
})  # fmt: skip
# Inside torch, module classes and functional references are data in a whole pickled model.
_INERT_TORCH_PREFIXES = ("torch.nn.modules.", "torch.nn.functional", "torch.nn.parallel.")


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle named a global that could run code; ``name`` is ``module.qualname``."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


class Inert:
    """Placeholder for a global that is not rebuilt: it records what the pickle hands it, nothing more.

    Subclasses are made per global by :meth:`RestrictedUnpickler.find_class`; ``global_name`` says
    which. Calling the class, ``__setstate__``, item assignment and ``append``/``extend`` (the only
    operations a pickle performs on an object) just store their arguments.
    """

    global_name = "?"

    def __new__(cls, *args, **kwargs):
        instance = object.__new__(cls)
        instance.args, instance.kwargs = list(args), dict(kwargs)
        instance.state, instance.items, instance.elements = None, {}, []
        return instance

    def __init__(self, *args, **kwargs):
        pass  # __new__ recorded the arguments; a pickle calls one or the other

    def __setstate__(self, state):
        self.state = state

    def __setitem__(self, key, value):
        self.items[key] = value

    def append(self, value):
        self.elements.append(value)

    def extend(self, values):
        self.elements.extend(values)

    def __repr__(self) -> str:
        return f"<inert {self.global_name}>"


def _encode(text, encoding="latin1", errors="strict"):
    """``_codecs.encode`` as protocol-2 pickles use it for ``bytes``: text to bytes, nothing else."""
    if not isinstance(text, str) or not isinstance(encoding, str) or not isinstance(errors, str):
        raise pickle.UnpicklingError("_codecs.encode with non-text arguments")
    return text.encode(encoding, errors)


_PLAIN_TYPES = (object, dict, list, tuple, set, frozenset, int, float, complex, str, bytes, bytearray)


def _reconstructor(cls, base, state):
    """``copyreg._reconstructor`` (protocol 0/1 objects), for placeholders and plain types only."""
    if isinstance(cls, type) and issubclass(cls, Inert):
        return cls(state) if state is not None else cls()
    if cls not in _REBUILT_TYPES or base not in _PLAIN_TYPES:
        raise pickle.UnpicklingError(f"copyreg._reconstructor of {cls!r} over {base!r}")
    if base is object:
        return object.__new__(cls)
    instance = base.__new__(cls, state)
    base.__init__(instance, state)
    return instance


@functools.cache
def _numpy_globals() -> Mapping[str, Any]:
    """numpy's pickle entry points under both module layouts (numpy 1 ``core``, numpy 2 ``_core``).

    Read once, on the first numpy global a pickle names (numpy is not imported before)."""
    import numpy

    multiarray = getattr(numpy, "_core", None)
    multiarray = getattr(multiarray, "multiarray", None) or numpy.core.multiarray
    numeric = getattr(getattr(numpy, "_core", None), "numeric", None) or numpy.core.numeric
    table: dict[str, Any] = {"numpy.ndarray": numpy.ndarray, "numpy.dtype": numpy.dtype}
    for package in ("numpy.core", "numpy._core"):
        table[f"{package}.multiarray._reconstruct"] = multiarray._reconstruct
        table[f"{package}.multiarray.scalar"] = multiarray.scalar
        if hasattr(numeric, "_frombuffer"):
            table[f"{package}.numeric._frombuffer"] = numeric._frombuffer
    dtypes = getattr(numpy, "dtypes", None)
    for name in dir(dtypes) if dtypes is not None else ():
        value = getattr(dtypes, name)
        if isinstance(value, type) and issubclass(value, numpy.dtype):
            table[f"numpy.dtypes.{name}"] = value
    for name in set(numpy.sctypeDict.values()):
        table[f"numpy.{name.__name__}"] = name
    return MappingProxyType(table)


def _torch_globals() -> dict[str, Any]:
    """torch's data constructors: rebuild functions, dtypes, layouts, tensor and storage classes."""
    table: dict[str, Any] = {
        "torch.Size": torch.Size, "torch.device": torch.device, "torch.Tensor": torch.Tensor,
        "torch.nn.parameter.Parameter": torch.nn.Parameter,
        "torch._tensor._rebuild_from_type_v2": torch._tensor._rebuild_from_type_v2,
        "torch.serialization._get_layout": torch.serialization._get_layout,
    }
    for name in dir(torch._utils):
        if name.startswith("_rebuild_"):
            table[f"torch._utils.{name}"] = getattr(torch._utils, name)
    for name in dir(torch):
        value = getattr(torch, name, None)
        if isinstance(value, (torch.dtype, torch.layout, torch.memory_format, torch.qscheme)):
            table[f"torch.{name}"] = value
    for cls in (*torch._tensor_classes, *torch._storage_classes):
        table[f"{cls.__module__}.{cls.__name__}"] = cls
    return table


_BUILTIN_TYPES = {cls.__name__: cls for cls in (*_PLAIN_TYPES, bool, slice, range)}
REBUILT: Mapping[str, Any] = MappingProxyType({
    **{f"builtins.{name}": cls for name, cls in _BUILTIN_TYPES.items()},
    "collections.OrderedDict": collections.OrderedDict,
    "collections.defaultdict": collections.defaultdict,
    "collections.Counter": collections.Counter,
    "collections.deque": collections.deque,
    "_codecs.encode": _encode,
    "copyreg._reconstructor": _reconstructor,
    **_torch_globals(),
})
_REBUILT_TYPES = frozenset(value for value in REBUILT.values() if isinstance(value, type))


def refusal(module: str, name: str) -> bool:
    """True when the global ``module.name`` is refused rather than rebuilt or made inert."""
    full = f"{module}.{name}"
    if full.startswith(_INERT_TORCH_PREFIXES):
        return False
    return module.split(".")[0] in _REFUSED_PACKAGES or name.split(".")[-1] in _REFUSED_NAMES


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose globals come only from :data:`REBUILT` or are :class:`Inert`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.placeholders: dict[str, type[Inert]] = {}

    def find_class(self, module: str, name: str):
        # Python 2 names, as protocol-2 pickles write them (``__builtin__``, ``copy_reg``)
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        full = f"{module}.{name}"
        if full == "builtins.getattr":
            return self._getattr
        if full in REBUILT:
            return REBUILT[full]
        if module.split(".")[0] == "numpy" and full in _numpy_globals():
            return _numpy_globals()[full]
        if refusal(module, name):
            raise RefusedGlobal(full)
        return self._placeholder(full)

    def _placeholder(self, full: str) -> type[Inert]:
        if full not in self.placeholders:
            self.placeholders[full] = type(full.rsplit(".", 1)[-1], (Inert,), {"global_name": full,
                                                                                "__module__": __name__})
        return self.placeholders[full]

    def _getattr(self, obj, name, *default):
        """``getattr`` for pickles: an attribute of a placeholder is a placeholder; nothing else is read."""
        owner = obj if isinstance(obj, type) else type(obj)
        if issubclass(owner, Inert) and isinstance(name, str):
            return self._placeholder(f"{owner.global_name}.{name}")
        raise RefusedGlobal(f"builtins.getattr({owner.__module__}.{owner.__qualname__}, {name!r})")


class Unpickler(RestrictedUnpickler):
    """The name torch.load looks up on its ``pickle_module``."""


def load(file, **kwargs):
    """``pickle.load`` through :class:`RestrictedUnpickler` (torch's legacy format calls it)."""
    return RestrictedUnpickler(file, **kwargs).load()


def placeholders_in(obj, found: set[str] | None = None) -> set[str]:
    """Names of the inert globals anywhere inside ``obj`` (containers and placeholder contents)."""
    found = set() if found is None else found
    stack = [obj]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, (str, bytes, int, float, torch.Tensor)):
            continue
        seen.add(id(item))
        if isinstance(item, Inert):
            found.add(item.global_name)
            stack.extend([item.args, item.kwargs, item.state, item.items, item.elements])
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        elif isinstance(item, type) and issubclass(item, Inert):
            found.add(item.global_name)
    return found
