"""Models: the mmseg adapter, user factories, checkpoint handling and the model zoo.

``build_segmentor`` imports mmseg only when called, so ``import benchmark.models`` stays light; a zoo
model built by a user's factory (:mod:`benchmark.models.factory`) never imports mmseg.
"""

from benchmark.models.zoo import ModelEntry, get_model_entry, load_zoo


def build_segmentor(*args, **kwargs):
    """See :func:`benchmark.models.mmseg_adapter.build_segmentor`."""
    from benchmark.models.mmseg_adapter import build_segmentor as _build

    return _build(*args, **kwargs)


def build_zoo_model(name: str, device="cpu", mode=None, strict=True, checkpoint_windows=False, weights=True):
    """Build the zoo model ``name`` with its checkpoint, verifying the recorded sha256 first.

    ``weights=False`` builds it without loading its checkpoint (random weights for an mmseg config, the
    factory's own for a factory), for its layers and geometry. A checkpoint error (checksum, format,
    keys, non-finite weights) is re-raised with the prefix ``model '<name>': `` so that a run with
    several models says which one is at fault.
    """
    from benchmark.errors import CheckpointError

    entry = get_model_entry(name)
    path = entry.checkpoint_path if weights else None
    if path is not None and not path.is_file():
        hint = f"; run: benchmark fetch-checkpoint {name}" if entry.url else ""
        raise CheckpointError(f"checkpoint of model {name!r} not found: {path}{hint}")
    try:
        if entry.factory is not None:
            from benchmark.models.factory import build_factory_model

            factory, module = entry.load_factory()
            return build_factory_model(factory, entry.factory, entry.num_classes, entry.class_names, entry.kwargs,
                                       checkpoint=path, expected_sha256=entry.sha256, strict=strict, device=device,
                                       module=module, name=name)
        if path is None:
            return build_segmentor(entry.config_path, device=device, mode=mode or entry.mode,
                                   default_crop_size=entry.crop_size)
        return build_segmentor(entry.config_path, checkpoint=path, device=device, mode=mode or entry.mode,
                               strict=strict, expected_sha256=entry.sha256, checkpoint_windows=checkpoint_windows,
                               default_crop_size=entry.crop_size)
    except CheckpointError as err:
        raise type(err)(f"model {name!r}: {err}") from None


def model_fingerprint(name: str):
    """What of zoo model ``name`` decides its numbers, for a run's fingerprint: the checkpoint's sha256
    (an mmseg entry), or the checkpoint's sha256 (or None) and the sha256 of the factory's source files."""
    from benchmark.fileio import sha256_file
    from benchmark.plugins import source_digests

    entry = get_model_entry(name)
    digest = None if entry.checkpoint_path is None else sha256_file(entry.checkpoint_path)
    if entry.factory is None:
        return digest
    return {"checkpoint": digest, "factory": entry.factory, "kwargs": entry.kwargs,
            "code": source_digests(entry.load_factory()[1])}


__all__ = ["ModelEntry", "build_segmentor", "build_zoo_model", "get_model_entry", "load_zoo", "model_fingerprint"]
