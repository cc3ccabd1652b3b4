"""``benchmark fetch-checkpoint``: download a zoo checkpoint for users who have a network.

The file is streamed into ``<checkpoint>.part`` beside its destination. An interrupted download
keeps that file, and the next call resumes it with an HTTP ``Range`` request (starting over when the
server ignores the range). When the download is complete its sha256 is checked against the zoo entry
(the full digest when recorded, else the 8-hex prefix in mmseg's file name), and only then is it
moved into place with ``os.replace``: nothing that looks like a valid checkpoint ever appears before
it is verified. Tests serve files from a local HTTP server; none reaches a real address.
"""

from __future__ import annotations

import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from benchmark.errors import CheckpointError
from benchmark.fileio import sha256_file
from benchmark.models.zoo import get_model_entry

_CHUNK = 1 << 20
Progress = Callable[[int, "int | None"], None]  # (bytes so far, total bytes or None)


def fetch_checkpoint(name: str, timeout_s: float = 60.0, opener=urllib.request.urlopen,
                     progress: Progress | None = None) -> tuple[Path, str]:
    """Download (or resume) the checkpoint of zoo model ``name``; return (path, sha256).

    Args:
        name: zoo model name.
        timeout_s: socket timeout of the connection, seconds.
        opener: ``urlopen``-like callable taking ``(request, timeout=...)``.
        progress: called with (bytes so far, total bytes or None) after every chunk.
    """
    entry = get_model_entry(name)
    if not entry.url:
        raise CheckpointError(f"model {name!r} has no download url (its checkpoint ships with the repository)")
    expected = entry.sha256 or entry.sha256_prefix
    if expected is None:
        raise CheckpointError(f"model {name!r} records no checksum to verify a download against")
    destination = entry.checkpoint_path
    partial = destination.with_name(destination.name + ".part")
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        _download(entry.url, partial, timeout_s, opener, progress)
    except (OSError, http.client.HTTPException) as err:  # URLError, socket errors, IncompleteRead
        kept = partial.stat().st_size if partial.exists() else 0
        resume = f"; {kept / 1e6:.1f} MB kept in {partial}, run the command again to resume" if kept else ""
        raise CheckpointError(f"download of {name!r} from {entry.url} failed: {err}{resume}") from None
    digest = sha256_file(partial)
    if not digest.startswith(expected):
        partial.unlink()
        raise CheckpointError(f"download of {name!r} from {entry.url} has sha256 {digest}, expected {expected}; "
                              f"not stored")
    os.replace(partial, destination)
    return destination, digest


def _download(url: str, partial: Path, timeout_s: float, opener, progress: Progress | None) -> None:
    offset = partial.stat().st_size if partial.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        response = opener(urllib.request.Request(url, headers=headers), timeout=timeout_s)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # the range starts at the end: the partial file is complete
            return
        raise
    with response:
        if offset and getattr(response, "status", 200) != 206:
            offset = 0  # the server ignored the range and sends the whole file
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        done = offset
        with open(partial, "ab" if offset else "wb") as out:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        if total is not None and done < total:
            raise ConnectionError(f"connection closed after {done} of {total} bytes")
