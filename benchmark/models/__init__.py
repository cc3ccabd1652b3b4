"""Models: the mmseg adapter, checkpoint handling and the model zoo.

``build_segmentor`` imports mmseg only when called, so ``import benchmark.models`` stays light.
"""

from benchmark.models.zoo import ModelEntry, get_model_entry, load_zoo


def build_segmentor(*args, **kwargs):
    """See :func:`benchmark.models.mmseg_adapter.build_segmentor`."""
    from benchmark.models.mmseg_adapter import build_segmentor as _build

    return _build(*args, **kwargs)


def build_zoo_model(name: str, device="cpu", mode=None, strict=True, checkpoint_windows=False):
    """Build the zoo model ``name`` with its checkpoint, verifying the recorded sha256 first.

    A checkpoint error (checksum, format, keys, non-finite weights) is re-raised with the prefix
    ``model '<name>': `` so that a run with several models says which one is at fault.
    """
    from benchmark.errors import CheckpointError

    entry = get_model_entry(name)
    path = entry.checkpoint_path
    if not path.is_file():
        hint = f"; run: benchmark fetch-checkpoint {name}" if entry.url else ""
        raise CheckpointError(f"checkpoint of model {name!r} not found: {path}{hint}")
    try:
        return build_segmentor(entry.config_path, checkpoint=path, device=device, mode=mode or entry.mode,
                               strict=strict, expected_sha256=entry.sha256, checkpoint_windows=checkpoint_windows,
                               default_crop_size=entry.crop_size)
    except CheckpointError as err:
        raise type(err)(f"model {name!r}: {err}") from None


__all__ = ["ModelEntry", "build_segmentor", "build_zoo_model", "get_model_entry", "load_zoo"]
