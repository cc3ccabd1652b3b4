"""The run directory: checked writable before any work, locked for one run at a time, and never left
holding another configuration's results.

- :func:`probe` creates ``out_dir`` and writes and removes a test file;
- :class:`RunLock` is ``out_dir/.lock`` (pid, host, start time): a second live run into the folder fails
  at once with one line naming the holder; a lock whose process is gone (same host) is taken over;
- :func:`move_aside` moves the result files of an earlier run (``results.json``, ``results.md``,
  heatmaps, the saved set) into ``out_dir/replaced-<UTC time>/`` before a new run starts, so a failed
  run can never leave an older, complete-looking result behind.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from benchmark.errors import ResultError

LOCK = ".lock"
RESULT_FILES = ("results.json", "results.md", "per_class_metrics.csv", "config.yaml", "run.log", "heatmap.png",
                "heatmap_*.png", "matrix_*.png", "adv")


def probe(out_dir: str | os.PathLike[str]) -> Path:
    """Create ``out_dir`` (and parents) and prove it writable; ResultError naming it otherwise."""
    path = Path(out_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        test = path / f".write-test-{os.getpid()}"
        test.write_bytes(b"ok")
        test.unlink()
    except OSError as err:
        raise ResultError(f"results.out_dir {path} cannot be used: {err.strerror or err}") from None
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """``out_dir/.lock``, held for the lifetime of the run (use as a context manager or call release)."""

    def __init__(self, out_dir: str | os.PathLike[str]):
        self.path = Path(out_dir) / LOCK
        self.held = False

    def acquire(self) -> RunLock:
        mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder and (holder.get("host") != mine["host"] or _alive(int(holder.get("pid", -1)))):
                    raise ResultError(
                        f"another run (pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}) "
                        f"is writing into {self.path.parent}; wait for it or choose another --results.out_dir"
                    ) from None
                self.path.unlink(missing_ok=True)  # its process is gone: a stale lock
                continue
            with os.fdopen(fd, "w") as handle:
                json.dump(mine, handle)
            self.held = True
            return self
        raise ResultError(f"cannot take the lock {self.path}")

    def _holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None  # unreadable: half-written by a process that died

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def earlier_results(out_dir: str | os.PathLike[str]) -> list[Path]:
    """Result files of an earlier run in ``out_dir``."""
    folder = Path(out_dir)
    return sorted({p for pattern in RESULT_FILES for p in folder.glob(pattern)})


def move_aside(out_dir: str | os.PathLike[str]) -> Path | None:
    """Move :func:`earlier_results` into ``out_dir/replaced-<UTC time>/``; return that folder (None if nothing)."""
    found = earlier_results(out_dir)
    if not found:
        return None
    target = Path(out_dir) / time.strftime("replaced-%Y%m%d-%H%M%S", time.gmtime())
    suffix = 0
    while target.exists():
        suffix += 1
        target = target.with_name(f"{target.name.split('.')[0]}.{suffix}")
    target.mkdir()
    for path in found:
        path.rename(target / path.name)
    return target
