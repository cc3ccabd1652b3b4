"""Checkpoint files: sha256, weights-only loading, strict key checks, saving (torch only).

Two on-disk formats load:

- mmengine / mmseg checkpoints: a dict with ``state_dict`` (and usually ``meta``, optimiser state...);
- bare state dicts: a flat ``{name: Tensor}`` mapping.

Loading always goes through ``torch.load(..., weights_only=True)``: a file whose unpickling would need
arbitrary code or classes is refused with :class:`CheckpointError` and is never executed.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from benchmark.errors import CheckpointError
from benchmark.fileio import write_atomic

_CHUNK = 1 << 20
_MAX_KEYS_SHOWN = 6


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a checkpoint file weights-only and return its tensor state dict.

    Raises:
        CheckpointError: the file is missing, is not a torch file, needs code to unpickle, or holds
            no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"refusing {path}: it is not loadable weights-only (it carries pickled code or objects: "
            f"{_first_line(err)}); convert it to tensors and plain types first"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {_first_line(err)}") from None
    state = payload.get("state_dict", payload) if isinstance(payload, Mapping) else None
    if not isinstance(state, Mapping) or not state:
        raise CheckpointError(f"{path} holds no state dict (expected a tensor mapping or a 'state_dict' key)")
    bad = [key for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: state dict entries that are not tensors: {_short(bad)}")
    return dict(state)


def load_weights(module: nn.Module, path: str | os.PathLike, strict: bool = True) -> None:
    """Load a checkpoint file into ``module`` with a key check that names the mismatches.

    Args:
        module: the network whose ``state_dict`` keys the file must match.
        path: checkpoint file (mmengine format or bare state dict).
        strict: if True (default), missing or unexpected keys and shape mismatches are an error;
            if False, matching keys load and the rest are skipped (shape mismatches stay an error).
    """
    state = load_state_dict(path)
    own = module.state_dict()
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    if strict and (missing or unexpected):
        raise CheckpointError(
            f"{path} does not match the model: missing keys {_short(missing)}; "
            f"unexpected keys {_short(unexpected)} (pass strict=False to load the overlap)"
        )
    mismatched = [key for key in own if key in state and state[key].shape != own[key].shape]
    if mismatched:
        key = mismatched[0]
        raise CheckpointError(
            f"{path}: shape mismatch for {key}: file {tuple(state[key].shape)} vs model "
            f"{tuple(own[key].shape)} ({len(mismatched)} mismatched keys)"
        )
    module.load_state_dict({key: value for key, value in state.items() if key in own}, strict=strict)


def save_checkpoint(module: nn.Module, path: str | os.PathLike, meta: Mapping | None = None) -> str:
    """Write ``{'state_dict', 'meta'}`` (mmengine layout) atomically and return its sha256.

    ``meta`` must hold plain types only (str, numbers, lists, dicts) so the file loads weights-only.
    """
    state = {key: value.detach().cpu().clone() for key, value in module.state_dict().items()}
    payload = {"state_dict": state, "meta": dict(meta or {})}
    write_atomic(path, lambda handle: torch.save(payload, handle))
    return sha256_file(path)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _short(keys: list[str]) -> str:
    if not keys:
        return "none"
    shown = ", ".join(keys[:_MAX_KEYS_SHOWN])
    more = len(keys) - _MAX_KEYS_SHOWN
    return f"[{shown}{f', ... (+{more} more)' if more > 0 else ''}]"
