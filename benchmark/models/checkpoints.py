"""Checkpoint files: sha256, safe reading of every common format, key alignment and checks (torch only).

Formats read (:func:`read_checkpoint`), all without running code from the file:

- torch's zip serialisation and its legacy (non-zip) one, read through the restricted unpickler of
  :mod:`benchmark.models.unpickler`: mmengine Runner checkpoints (``meta`` with numpy values,
  ``message_hub`` with ``HistoryBuffer``, ``optimizer``, ``param_schedulers``), mmcv 1.x / mmseg 0.x
  checkpoints (``meta`` with ``CLASSES``, ``PALETTE``, config text), Lightning checkpoints and bare
  state dicts; a whole pickled ``nn.Module`` gives up its parameters and buffers;
- ``.safetensors`` files.

The weights are found under ``state_dict``, ``model`` or ``module`` (or are the file's top level);
everything else is metadata. A key prefix that the model lacks (``module.`` from DDP/DataParallel,
``model.`` from a Lightning module) is stripped when that makes the keys match. TorchScript archives
are refused: they are programs. Weights holding NaN or inf are refused before loading.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmark.errors import CheckpointError
from benchmark.fileio import sha256_file, write_atomic
from benchmark.models import unpickler

_MAX_KEYS_SHOWN = 6
WEIGHT_KEYS = ("state_dict", "model", "module")
FORMATS = ("torch-zip", "torch-legacy", "safetensors")


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint file holds, read safely.

    Args:
        weights: the tensors of the state dict, keys as stored.
        meta: the rest of the file (top-level keys other than the weights), tensors included, with
            :class:`~benchmark.models.unpickler.Inert` placeholders where the file named classes.
        format: one of :data:`FORMATS`.
        weights_key: the top-level key the weights were under, ``None`` for a bare state dict.
        placeholders: globals the file named that were replaced by inert placeholders.
    """

    weights: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(repr=False)
    format: str
    weights_key: str | None
    placeholders: tuple[str, ...]


@dataclass(frozen=True)
class LoadReport:
    """How a checkpoint's weights went into a model.

    ``loaded`` of the model's ``total`` state tensors came from the file; ``missing`` are model keys
    the file lacks, ``unexpected`` file keys the model lacks (after stripping ``prefix``).
    """

    path: str
    format: str
    weights_key: str | None
    prefix: str
    loaded: int
    total: int
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    placeholders: tuple[str, ...]

    def summary(self) -> str:
        return (f"{self.path}: loaded {self.loaded} of the model's {self.total} tensors; "
                f"{len(self.missing)} missing {_short(list(self.missing))}, "
                f"{len(self.unexpected)} unexpected {_short(list(self.unexpected))}")


def read_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint file of any supported format without executing anything from it.

    Raises:
        CheckpointError: the file is missing or unreadable, is a TorchScript archive, names a global
            that could run code (the message names it), or holds no tensor state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    kind = _sniff(path)
    payload = _read_safetensors(path) if kind == "safetensors" else _read_torch(path, kind)
    weights, key = _find_weights(payload, path)
    meta = {k: v for k, v in payload.items() if k != key} if key is not None else {}
    found = unpickler.placeholders_in(payload)
    return Checkpoint(weights, meta, kind, key, tuple(sorted(found)))


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The weights of a checkpoint file (see :func:`read_checkpoint`)."""
    return read_checkpoint(path).weights


def load_weights(module: nn.Module, path: str | os.PathLike, strict: bool = True) -> LoadReport:
    """Load a checkpoint file into ``module`` with a key check that names the mismatches.

    Args:
        module: the network whose ``state_dict`` keys the file must match.
        path: checkpoint file (any format of :func:`read_checkpoint`).
        strict: if True (default), missing or unexpected keys are an error; if False, the matching
            keys load, the others are reported (a warning and the returned report). Either way a file
            that matches fewer than half of the model's tensors is refused, and shapes must agree.

    Returns:
        the :class:`LoadReport`.

    Raises:
        CheckpointError: keys or shapes do not match, or a floating-point tensor that would be loaded
            (parameter or buffer) holds NaN or inf (see :func:`check_finite`).
    """
    checkpoint = read_checkpoint(path)
    own = module.state_dict()
    weights, prefix = align_keys(checkpoint.weights, own.keys())
    missing = tuple(key for key in own if key not in weights)
    unexpected = tuple(key for key in weights if key not in own)
    report = LoadReport(str(path), checkpoint.format, checkpoint.weights_key, prefix, len(own) - len(missing),
                        len(own), missing, unexpected, checkpoint.placeholders)
    if strict and (missing or unexpected):
        raise CheckpointError(
            f"{path} does not match the model: missing keys {_short(list(missing))}; "
            f"unexpected keys {_short(list(unexpected))} (strict=False loads the overlap)"
        )
    if 2 * report.loaded < report.total:
        raise CheckpointError(
            f"{path} matches {report.loaded} of the model's {report.total} tensors, refusing to load it "
            f"(is it this model's checkpoint?); file keys start {_short(list(weights))}"
        )
    mismatched = [key for key in own if key in weights and weights[key].shape != own[key].shape]
    if mismatched:
        key = mismatched[0]
        raise CheckpointError(
            f"{path}: shape mismatch for {key}: file {tuple(weights[key].shape)} vs model "
            f"{tuple(own[key].shape)} ({len(mismatched)} mismatched keys)"
        )
    check_finite(weights, [key for key in own if key in weights], path)
    module.load_state_dict({key: value for key, value in weights.items() if key in own}, strict=strict)
    if missing or unexpected:
        warnings.warn(report.summary(), stacklevel=2)
    return report


def check_finite(weights: Mapping[str, torch.Tensor], keys, path: str | os.PathLike) -> None:
    """Refuse non-finite weights: the first floating-point tensor among ``keys`` (in that order) holding
    NaN or inf raises a CheckpointError naming it and counting its NaN and inf values.

    A diverged run, a bad conversion or an fp16 overflow leaves such tensors; the model then predicts
    one class everywhere and would be scored as if it worked. One ``isfinite`` pass per tensor; the
    counts are taken for the culprit only.
    """
    for key in keys:
        tensor = weights[key]
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            nan, inf = int(torch.isnan(tensor).sum()), int(torch.isinf(tensor).sum())
            raise CheckpointError(f"{path}: tensor {key} holds {nan:,} NaN and {inf:,} inf of {tensor.numel():,} "
                                  "values; the checkpoint is damaged or its training diverged")


def align_keys(weights: Mapping[str, torch.Tensor], model_keys) -> tuple[dict[str, torch.Tensor], str]:
    """Strip the key prefix that makes ``weights`` match ``model_keys`` best; return (weights, prefix).

    Candidates are ``module.`` (repeated: DDP inside DataParallel) and any first key component shared
    by at least half of the keys (``model.`` of a Lightning module). Keys without the prefix stay as
    they are. No prefix is stripped unless it increases the number of matching keys.
    """
    model_keys = set(model_keys)
    best, best_prefix = dict(weights), ""
    best_score = len(model_keys & set(best))
    for prefix in _candidate_prefixes(list(weights)):
        renamed = {(key[len(prefix):] if key.startswith(prefix) else key): value for key, value in weights.items()}
        score = len(model_keys & set(renamed))
        if score > best_score:
            best, best_prefix, best_score = renamed, prefix, score
    return best, best_prefix


def save_checkpoint(module: nn.Module, path: str | os.PathLike, meta: Mapping | None = None) -> str:
    """Write ``{'state_dict', 'meta'}`` (mmengine layout) atomically and return its sha256.

    ``meta`` must hold plain types only (str, numbers, lists, dicts) so the file loads weights-only.
    """
    state = {key: value.detach().cpu().clone() for key, value in module.state_dict().items()}
    payload = {"state_dict": state, "meta": dict(meta or {})}
    write_atomic(path, lambda handle: torch.save(payload, handle))
    return sha256_file(path)


def _sniff(path: Path) -> str:
    """The file's format: by its suffix or, for safetensors, its header (a u64 length, then JSON)."""
    if zipfile.is_zipfile(path):
        return "torch-zip"
    with open(path, "rb") as handle:
        head = handle.read(9)
    header_fits = len(head) == 9 and int.from_bytes(head[:8], "little") < path.stat().st_size
    if path.suffix == ".safetensors" or (header_fits and head[8:9] == b"{"):
        return "safetensors"
    return "torch-legacy"


def _read_safetensors(path: Path) -> dict[str, Any]:
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt", device="cpu") as handle:
            weights = {key: handle.get_tensor(key) for key in handle.keys()}
            metadata = dict(handle.metadata() or {})
    except ImportError:
        raise CheckpointError(f"{path}: reading .safetensors files needs the safetensors package") from None
    except Exception as err:  # safetensors raises its own error type for a corrupt header
        raise CheckpointError(f"cannot read safetensors file {path}: {_first_line(err)}") from None
    return {"state_dict": weights, "safetensors_metadata": metadata}


def _read_torch(path: Path, kind: str) -> dict[str, Any]:
    if kind == "torch-zip":
        with zipfile.ZipFile(path) as archive:
            if any(Path(name).name == "constants.pkl" for name in archive.namelist()):
                raise CheckpointError(f"refusing {path}: it is a TorchScript archive, which holds code; "
                                      f"save the model's state_dict() instead")
    try:
        payload = torch.load(path, map_location="cpu", pickle_module=unpickler, weights_only=False)
    except unpickler.RefusedGlobal as err:
        raise CheckpointError(
            f"refusing {path}: its pickle calls {err.name}, which can run code; nothing in it was executed"
        ) from None
    except Exception as err:  # torch raises many types (RuntimeError, EOFError, UnpicklingError, ...)
        hint = ("; unset TORCH_FORCE_WEIGHTS_ONLY_LOAD, this reader is restricted already"
                if os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD") else "")
        raise CheckpointError(f"cannot read checkpoint {path}: {_first_line(err)}{hint}") from None
    if isinstance(payload, unpickler.Inert) and _is_module(payload):
        return {"module": payload}
    if not isinstance(payload, Mapping):
        raise CheckpointError(f"{path} holds a {_kind(payload)}, not a state dict or a checkpoint mapping")
    return dict(payload)


def _find_weights(payload: dict[str, Any], path: Path) -> tuple[dict[str, torch.Tensor], str | None]:
    for key in WEIGHT_KEYS:
        value = payload.get(key)
        if isinstance(value, unpickler.Inert) and _is_module(value):
            return _check_tensors(_module_state(value), path), key
        if isinstance(value, Mapping) and value:
            return _check_tensors(value, path), key
    if payload and any(isinstance(value, torch.Tensor) for value in payload.values()):
        return _check_tensors(payload, path), None
    raise CheckpointError(f"{path} holds no state dict: no tensors at its top level and none under "
                          f"{'/'.join(WEIGHT_KEYS)} (its keys: {_short([str(k) for k in payload])})")


def _check_tensors(state: Mapping, path: Path) -> dict[str, torch.Tensor]:
    bad = [key for key, value in state.items() if not isinstance(value, torch.Tensor) or not isinstance(key, str)]
    if bad:
        raise CheckpointError(f"refusing {path}: state dict entry {bad[0]!r} is a {_kind(state[bad[0]])}, not a tensor "
                              f"({len(bad)} such entries)")
    return {key: value.detach() if isinstance(value, nn.Parameter) else value for key, value in state.items()}


def _is_module(obj: unpickler.Inert) -> bool:
    return isinstance(obj.state, dict) and "_parameters" in obj.state and "_modules" in obj.state


def _module_state(obj: unpickler.Inert, prefix: str = "") -> dict[str, Any]:
    """The state dict of a pickled ``nn.Module`` rebuilt as placeholders: parameters and persistent buffers."""
    state = obj.state
    skip = state.get("_non_persistent_buffers_set") or set()
    out = {f"{prefix}{name}": value for name, value in (state.get("_parameters") or {}).items() if value is not None}
    out.update({f"{prefix}{name}": value for name, value in (state.get("_buffers") or {}).items()
                if value is not None and name not in skip})
    for name, child in (state.get("_modules") or {}).items():
        if isinstance(child, unpickler.Inert) and _is_module(child):
            out.update(_module_state(child, f"{prefix}{name}."))
    return out


def _candidate_prefixes(keys: list[str]) -> list[str]:
    candidates, prefix = [], "module."
    while keys and any(key.startswith(prefix) for key in keys):
        candidates.append(prefix)
        prefix += "module."
    heads: dict[str, int] = {}
    for key in keys:
        if "." in key:
            head = key.split(".", 1)[0] + "."
            heads[head] = heads.get(head, 0) + 1
    candidates += [head for head, count in heads.items() if 2 * count >= len(keys) and head not in candidates]
    return candidates


def _kind(value) -> str:
    return value.global_name if isinstance(value, unpickler.Inert) else type(value).__name__


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _short(keys: list[str]) -> str:
    if not keys:
        return "none"
    shown = ", ".join(keys[:_MAX_KEYS_SHOWN])
    more = len(keys) - _MAX_KEYS_SHOWN
    return f"[{shown}{f', ... (+{more} more)' if more > 0 else ''}]"

