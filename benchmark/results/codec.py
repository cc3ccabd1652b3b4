"""Strict conversion between frozen dataclasses and JSON values, driven by the type annotations.

Supported field types: ``int``, ``float``, ``str``, ``bool``, ``X | None``, ``tuple[X, ...]``, nested
dataclasses and ``dict[str, JSONScalar]`` (flat attack settings, file digests). Decoding is strict:

- a dataclass is a JSON object with exactly its field names: missing and unknown keys are errors;
- ``int`` accepts only JSON integers, ``float`` accepts JSON integers and floats (never booleans or
  strings); numbers written as strings are errors;
- NaN and infinities never appear: encoding rejects them (undefined values are ``None`` / ``null``).

Every error is a :class:`~benchmark.errors.ResultError` naming the file and the key path, e.g.
``results.json: metrics[2].miou: expected a number, got str '0.5'``.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, TypeVar

from benchmark.errors import ResultError

T = TypeVar("T")
JSONScalar = bool | int | float | str | None
def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"


def _scalar(value: Any, where: str) -> JSONScalar:
    if isinstance(value, float) and not math.isfinite(value):
        raise ResultError(f"{where}: non-finite number {value!r} (write null for undefined values)")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ResultError(f"{where}: expected a JSON scalar, got {_describe(value)}")


#: dataclass field metadata key: omit the field from files while it holds its default
OMIT_DEFAULT = "omit_default"
#: dataclass field metadata key: the field's JSON key when it differs from its Python name (``import``)
JSON_KEY = "json_key"


def json_key(f: dataclasses.Field) -> str:
    """The JSON key of dataclass field ``f``: ``metadata[JSON_KEY]``, else its name."""
    return f.metadata.get(JSON_KEY, f.name)


def encode(value: Any, where: str = "") -> Any:
    """Dataclass -> JSON-ready value (dicts, lists, scalars); NaN/inf rejected.

    A field marked ``metadata={OMIT_DEFAULT: True}`` (one added after files were written without it)
    is left out while it holds its default, so those files and their content hashes stay valid.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {json_key(f): encode(getattr(value, f.name), f"{where}.{json_key(f)}".lstrip("."))
                for f in dataclasses.fields(value)
                if not (f.metadata.get(OMIT_DEFAULT) and getattr(value, f.name) == f.default)}
    if isinstance(value, (tuple, list)):
        return [encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): encode(v, f"{where}.{k}") for k, v in value.items()}
    return _scalar(value, where or "<value>")


def decode(tp: Any, value: Any, file: str, path: str = "") -> Any:
    """JSON value -> instance of ``tp``; raises ResultError naming ``file`` and the key ``path``."""
    where = f"{file}: {path or '<top>'}"
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _decode_dataclass(tp, value, file, path)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            if type(None) in typing.get_args(tp):
                return None
            raise ResultError(f"{where}: null is not allowed here")
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return decode(inner, value, file, path)
    if origin is tuple:
        if not isinstance(value, list):
            raise ResultError(f"{where}: expected a list, got {_describe(value)}")
        inner = typing.get_args(tp)[0]
        return tuple(decode(inner, v, file, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ResultError(f"{where}: expected an object, got {_describe(value)}")
        return {k: _scalar(v, f"{file}: {path}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ResultError(f"{where}: expected true/false, got {_describe(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ResultError(f"{where}: expected an integer, got {_describe(value)}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(_scalar(value, where))
        raise ResultError(f"{where}: expected a number, got {_describe(value)}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ResultError(f"{where}: expected a string, got {_describe(value)}")
    raise TypeError(f"unsupported annotation {tp!r} at {where}")  # programming error, not user input


def _decode_dataclass(cls: type[T], value: Any, file: str, path: str) -> T:
    if not isinstance(value, dict):
        raise ResultError(f"{file}: {path or '<top>'}: expected an object, got {_describe(value)}")
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    names = {json_key(f): f.name for f in fields}  # JSON key -> field name
    key = (lambda name: f"{path}.{name}" if path else name)
    missing = [json_key(f) for f in fields if json_key(f) not in value and not f.metadata.get(OMIT_DEFAULT)]
    if missing:
        raise ResultError(f"{file}: missing key '{key(missing[0])}'")
    unknown = sorted(set(value) - set(names))
    if unknown:
        raise ResultError(f"{file}: unknown key '{key(unknown[0])}'")
    kwargs = {n: decode(hints[n], value[k], file, key(k)) for k, n in names.items() if k in value}
    try:
        return cls(**kwargs)
    except ResultError as err:
        raise ResultError(f"{file}: {path or '<top>'}: {err}") from None
