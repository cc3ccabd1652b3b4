"""Atomic file writing: readers see the old file or the complete new one, never a partial one."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Yield a binary handle on a temporary file beside ``path``; on success it is flushed, synced,
    given ordinary permissions (0666 minus the umask; mkstemp makes 0600) and moved onto ``path`` with
    ``os.replace``. On any error the temporary file is removed and ``path`` is untouched; an
    ``OSError`` without a file name (a full disk's) is re-raised naming ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise _named(err, path) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise _named(err, path) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _named(err: OSError, path: Path) -> OSError:
    """``err`` naming ``path`` when it names no file."""
    return err if err.filename else OSError(err.errno, err.strerror or str(err), str(path))


def write_atomic(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> None:
    """``write(handle)`` into ``path`` atomically (see :func:`atomic_writer`)."""
    with atomic_writer(path) as handle:
        write(handle)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
