"""``benchmark fetch-checkpoint``: download a zoo checkpoint for users who have a network.

The file is streamed into a temporary file beside its destination, its sha256 is checked against the
zoo entry (the full digest when recorded, else the 8-hex prefix in mmseg's file name), and only then
is it moved into place with ``os.replace``, so an interrupted or corrupted download never leaves a
file that looks valid. Tests never call this with a real address.
"""

from __future__ import annotations

import hashlib
import urllib.request
from pathlib import Path

from benchmark.errors import CheckpointError
from benchmark.fileio import atomic_writer
from benchmark.models.zoo import get_model_entry

_CHUNK = 1 << 20


def fetch_checkpoint(name: str, timeout_s: float = 60.0, opener=urllib.request.urlopen) -> tuple[Path, str]:
    """Download the checkpoint of zoo model ``name``; return (path, sha256)."""
    entry = get_model_entry(name)
    if not entry.url:
        raise CheckpointError(f"model {name!r} has no download url (its checkpoint ships with the repository)")
    if entry.sha256 is None and entry.sha256_prefix is None:
        raise CheckpointError(f"model {name!r} records no checksum to verify a download against")
    destination = entry.checkpoint_path
    digest = hashlib.sha256()
    expected = entry.sha256 or entry.sha256_prefix
    try:
        with atomic_writer(destination) as out, opener(entry.url, timeout=timeout_s) as response:
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
            if not digest.hexdigest().startswith(expected):
                raise CheckpointError(f"download of {name!r} from {entry.url} has sha256 {digest.hexdigest()}, "
                                      f"expected {expected}; not stored")
    except OSError as err:
        raise CheckpointError(f"download of {name!r} from {entry.url} failed: {err}") from None
    return destination, digest.hexdigest()
