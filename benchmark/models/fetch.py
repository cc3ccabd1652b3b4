"""``benchmark fetch-checkpoint``: download a zoo checkpoint for users who have a network.

The file is streamed into a temporary file beside its destination, its sha256 is checked against the
zoo entry (the full digest when recorded, else the 8-hex prefix in mmseg's file name), and only then
is it moved into place with ``os.replace``, so an interrupted or corrupted download never leaves a
file that looks valid. Tests never call this with a real address.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

from benchmark.errors import CheckpointError
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
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part")
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, opener(entry.url, timeout=timeout_s) as response:
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        hexdigest = digest.hexdigest()
        expected = entry.sha256 or entry.sha256_prefix
        if not hexdigest.startswith(expected):
            raise CheckpointError(
                f"download of {name!r} from {entry.url} has sha256 {hexdigest}, expected {expected}; not stored"
            )
        os.replace(tmp, destination)
    except OSError as err:
        raise CheckpointError(f"download of {name!r} from {entry.url} failed: {err}") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return destination, hexdigest
