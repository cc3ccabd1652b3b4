"""Run ``benchmark`` with one fault injected at a named point: the fault-injection tests' driver.

    python tests/lightning/faults.py POINT ACTION -- BENCHMARK ARGS...

POINT is where the fault strikes, in this process:

- ``journal:K``: once the K-th batch line of the journal is durable (after the last one: the window
  between the last batch and the result);
- ``journal-torn:K``: halfway through writing the K-th batch line (a torn line);
- ``write:NAME``: halfway through the atomic write of the file named NAME (results.json,
  manifest.json, results.md, per_class_metrics.csv, heatmap.png, or a saved PNG);
- ``wandb-finish``: when the W&B run is being finished;
- ``remove-journal``: when every result file is written and the journal is about to be removed.

ACTION is ``kill`` (SIGKILL to this process: nothing runs after it) or ``enospc`` (the write there
fails with ``OSError(ENOSPC)``, as on a full disk; for ``journal:K`` the K-th line is not written).
Without a fault that strikes, the run ends normally; the tests check the exit status.
"""

from __future__ import annotations

import errno
import os
import signal
import sys


def _strike(action: str) -> None:
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class _FullDisk:
    """A file handle on a full disk."""

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    flush = write


def install(point: str, action: str) -> None:
    kind, _, arg = point.partition(":")
    if kind in ("journal", "journal-torn"):
        from benchmark.results import journal

        original = journal.JournalWriter._write
        state = {"lines": 0}

        def write(self, value):
            if "names" not in value:  # the header
                return original(self, value)
            state["lines"] += 1
            if state["lines"] != int(arg):
                return original(self, value)
            if action == "enospc":  # the disk is full when this line is written: the writer sees the error
                handle, self._handle = self._handle, _FullDisk()
                try:
                    return original(self, value)
                finally:
                    self._handle = handle
            if kind == "journal":
                original(self, value)
                _strike(action)
            import json

            text = json.dumps(value, separators=(",", ":"))
            self._handle.write(text[: len(text) // 2])
            self._handle.flush()
            os.fsync(self._handle.fileno())
            _strike(action)

        journal.JournalWriter._write = write
    elif kind == "write":
        import contextlib

        from benchmark import fileio

        original_writer = fileio.atomic_writer.__wrapped__

        class Halfway:
            """A handle that strikes once half of what it is given is written."""

            def __init__(self, handle):
                self.handle = handle

            def write(self, data):
                self.handle.write(data[: max(1, len(data) // 2)])
                self.handle.flush()
                _strike(action)

            def __getattr__(self, name):
                return getattr(self.handle, name)

        @contextlib.contextmanager
        def writer(path):
            generator = original_writer(path)
            handle = next(generator)
            try:
                yield Halfway(handle) if os.path.basename(os.fspath(path)) == arg else handle
            except BaseException as err:
                generator.throw(err)
                raise
            else:
                next(generator, None)

        fileio.atomic_writer = writer
    elif kind == "wandb-finish":
        from wandb.sdk import wandb_run

        original_finish = wandb_run.Run.finish

        def finish(self, *args, **kwargs):
            _strike(action)
            return original_finish(self, *args, **kwargs)

        wandb_run.Run.finish = finish
    elif kind == "remove-journal":
        from benchmark.lightning import results_writer

        def remove(out_dir):
            _strike(action)

        results_writer.remove_journals = remove
    else:
        raise SystemExit(f"faults.py: unknown point {point!r}")


if __name__ == "__main__":
    at = sys.argv.index("--")
    point, action = sys.argv[1:at]
    install(point, action)
    from benchmark.cli import main

    sys.exit(main(sys.argv[at + 1:]))
