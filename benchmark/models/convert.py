"""``benchmark convert-checkpoint IN OUT.safetensors``: weights as safetensors, the rest as JSON beside it.

The input is read with the restricted reader (:func:`benchmark.models.checkpoints.read_checkpoint`),
so converting never runs code from the file. The weights (with a ``module.`` prefix of DDP stripped)
go to ``OUT.safetensors``; the metadata -- every other top-level entry, made JSON-safe -- goes to
``OUT.json``: numpy and torch scalars become numbers, small arrays lists, tensors and large arrays a
``{"tensor"|"ndarray": shape, "dtype": ...}`` summary, and placeholders of classes the file named
``{"global": "module.Class", "args": ..., "state": ...}``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from benchmark.errors import CheckpointError
from benchmark.fileio import write_atomic
from benchmark.models import unpickler
from benchmark.fileio import sha256_file
from benchmark.models.checkpoints import read_checkpoint

_MAX_LISTED = 64  # arrays up to this many elements are written out; larger ones are summarised


def convert_checkpoint(source: str | os.PathLike, target: str | os.PathLike) -> tuple[Path, Path, int]:
    """Write ``source``'s weights to ``target`` (``.safetensors``) and its metadata to ``target``'s ``.json``.

    Returns:
        (safetensors path, JSON path, number of tensors written).
    """
    source, target = Path(source), Path(target)
    if target.suffix != ".safetensors":
        raise CheckpointError(f"convert-checkpoint writes .safetensors files; got output {target}")
    if target.resolve() == source.resolve():
        raise CheckpointError(f"convert-checkpoint: input and output are the same file {source}")
    checkpoint = read_checkpoint(source)
    # Without a model to match, only the DDP prefix is unambiguous: strip it when every key has it.
    weights, prefix = checkpoint.weights, ""
    while weights and all(key.startswith("module.") for key in weights):
        weights, prefix = {key.removeprefix("module."): value for key, value in weights.items()}, prefix + "module."
    # safetensors needs contiguous tensors that share no memory
    tensors = {key: value.detach().contiguous().clone() for key, value in weights.items()}
    digest = sha256_file(source)
    info = {"source": str(source), "source_sha256": digest, "source_format": checkpoint.format,
            "weights_key": checkpoint.weights_key, "prefix_stripped": prefix, "tensors": len(tensors),
            "placeholders": list(checkpoint.placeholders), "meta": to_json(checkpoint.meta)}
    from safetensors.torch import save as save_safetensors

    blob = save_safetensors(tensors, metadata={"source_sha256": digest, "source_format": checkpoint.format})
    json_path = target.with_suffix(".json")
    write_atomic(target, lambda handle: handle.write(blob))
    write_atomic(json_path, lambda handle: handle.write((json.dumps(info, indent=2) + "\n").encode()))
    return target, json_path, len(tensors)


def to_json(value: Any) -> Any:
    """``value`` as JSON-safe data (see the module docstring); never calls into placeholders."""
    import numpy

    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, bytes):
        return {"bytes": len(value)}
    if isinstance(value, unpickler.Inert):
        out: dict[str, Any] = {"global": value.global_name}
        for name in ("args", "kwargs", "state", "items", "elements"):
            if getattr(value, name):
                out[name] = to_json(getattr(value, name))
        return out
    if isinstance(value, type) and issubclass(value, unpickler.Inert):
        return {"global": value.global_name}
    if isinstance(value, torch.Tensor):
        return (value.tolist() if value.numel() <= _MAX_LISTED and value.dim() <= 1
                else {"tensor": list(value.shape), "dtype": str(value.dtype).removeprefix("torch.")})
    if isinstance(value, numpy.generic):
        return value.item() if not isinstance(value, numpy.void) else str(value)
    if isinstance(value, numpy.ndarray):
        if value.dtype != object and value.size <= _MAX_LISTED:
            return value.tolist()
        return {"ndarray": list(value.shape), "dtype": str(value.dtype)}
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted((to_json(item) for item in value), key=repr)
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    return repr(value)
