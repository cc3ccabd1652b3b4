"""The run directory: checked writable before any work, locked for one run at a time, and never left
holding another configuration's results.

- :func:`probe` creates ``out_dir`` and writes and removes a test file;
- :class:`RunLock` is ``out_dir/.lock`` (pid, host, SLURM job, a heartbeat): a second live run into the
  folder fails at once with one line naming the holder and how to take over; the lock of a run that is
  gone (its process on this host, the same SLURM job requeued, a stopped heartbeat on another host) is
  taken over;
- :func:`move_aside` moves the result files of an earlier run (``results.json``, ``results.md``,
  heatmaps, the saved set) into ``out_dir/replaced-<UTC time>/`` before a new run starts, so a failed
  run can never leave an older, complete-looking result behind.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
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


HEARTBEAT_S = 30.0  # how often a running job refreshes its lock's modification time
STALE_S = 300.0  # a lock on another host whose heartbeat is this old is taken over (ten missed beats)


def host_name() -> str:
    """This machine's name as locks record it: ``$BENCHMARK_HOSTNAME`` if set (containers whose hostname
    changes on every start), else the hostname."""
    return os.environ.get("BENCHMARK_HOSTNAME") or socket.gethostname()


def slurm_job() -> str | None:
    """The SLURM job of this process (``<array job>_<task>`` for an array task), kept over a requeue."""
    if os.environ.get("SLURM_ARRAY_JOB_ID") and os.environ.get("SLURM_ARRAY_TASK_ID"):
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID") or None


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    now = _process_start(pid)
    return start is None or now is None or now == start  # another start time: the pid was reused


class RunLock:
    """``out_dir/.lock``, held for the lifetime of the run (a context manager, or acquire / release).

    The file records the holder's pid, host, process start time and SLURM job; while held, a
    background thread refreshes its modification time every :data:`HEARTBEAT_S` seconds. A lock is
    taken over (with a note on stderr) when its holder is gone: on this host its process no longer
    exists (or the pid now belongs to another process); on any host it is the same SLURM job (a
    requeued job, whose earlier incarnation SLURM has ended); on another host its heartbeat is older
    than :data:`STALE_S`; or ``takeover`` is set (the user knows the holder is gone). Otherwise a
    second run fails at once with one line naming the holder and the way to take over.
    """

    def __init__(self, out_dir: str | os.PathLike[str], takeover: bool = False):
        self.path = Path(out_dir) / LOCK
        self.takeover = takeover
        self.held = False
        self._mine: dict = {}
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def acquire(self) -> RunLock:
        pid = os.getpid()
        self._mine = {"pid": pid, "host": host_name(), "process_start": _process_start(pid), "slurm_job": slurm_job(),
                      "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder, age = self._holder()
                if holder == {}:
                    continue  # released meanwhile
                reason = "--takeover" if self.takeover else self._gone(holder, age)
                if reason is None:
                    raise ResultError(self._busy(holder, age)) from None
                print(f"note: took over the lock {self.path} of {_describe(holder)}: {reason}", file=sys.stderr)
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as handle:
                json.dump(self._mine, handle)
            self.held = True
            self._stop.clear()
            self._beat = threading.Thread(target=self._heartbeat, name="out-dir-lock", daemon=True)
            self._beat.start()
            return self
        raise ResultError(f"cannot take the lock {self.path}: other runs keep taking it")

    def _holder(self) -> tuple[dict | None, float]:
        """The lock's content (None if unreadable) and its heartbeat's age in seconds."""
        try:
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return {}, 0.0
        try:
            return json.loads(self.path.read_text()), age
        except FileNotFoundError:
            return {}, 0.0
        except (OSError, ValueError):
            return None, age

    def _gone(self, holder: dict | None, age: float) -> str | None:
        """Why ``holder`` no longer runs, or None if it may."""
        if holder is None:  # empty or half-written: its writer died, unless it is writing it right now
            return "it is unreadable (its writer died)" if age > 10 else None
        if holder.get("slurm_job") and holder.get("slurm_job") == slurm_job():
            return f"the same SLURM job {holder['slurm_job']}, requeued"
        if holder.get("host") == host_name():
            if not _alive(int(holder.get("pid", -1)), holder.get("process_start")):
                return "its process is gone"
            return None
        if age > STALE_S:
            return f"its heartbeat stopped {age:.0f} s ago (a lost node)"
        return None

    def _busy(self, holder: dict | None, age: float) -> str:
        return (f"another run ({_describe(holder)}, heartbeat {age:.0f} s ago) is writing into {self.path.parent}; "
                f"wait for it, choose another --results.out_dir, or pass --takeover if that run is gone (a lock "
                f"from another host is taken over by itself once its heartbeat is {STALE_S:.0f} s old)")

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            if not self._ours():
                return  # taken over (--takeover elsewhere): stop refreshing another run's lock
            try:
                os.utime(self.path)
            except OSError:
                pass  # a file system hiccup: the next beat tries again

    def _ours(self) -> bool:
        try:
            return json.loads(self.path.read_text()) == self._mine
        except (OSError, ValueError):
            return False

    def release(self) -> None:
        if self.held:
            self._stop.set()
            if self._ours():  # never remove the lock of a run that took ours over
                self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _describe(holder: dict | None) -> str:
    if not holder:
        return "an unknown run"
    job = f", SLURM job {holder['slurm_job']}" if holder.get("slurm_job") else ""
    return f"pid {holder.get('pid')} on {holder.get('host')}{job}, started {holder.get('started')}"


def earlier_results(out_dir: str | os.PathLike[str],
                    patterns: tuple[str, ...] | list[str] = RESULT_FILES) -> list[Path]:
    """Result files of an earlier run in ``out_dir``: the entries matching ``patterns`` (default
    :data:`RESULT_FILES`; ``benchmark summarize`` adds its summary files)."""
    folder = Path(out_dir)
    return sorted({p for pattern in patterns for p in folder.glob(pattern)})


def move_aside(out_dir: str | os.PathLike[str], patterns: tuple[str, ...] | list[str] = RESULT_FILES) -> Path | None:
    """Move :func:`earlier_results` (of ``patterns``) into ``out_dir/replaced-<UTC time>/``; return that
    folder (None if nothing)."""
    found = earlier_results(out_dir, patterns)
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
