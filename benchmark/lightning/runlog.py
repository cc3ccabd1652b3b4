"""``OUT_DIR/run.log``: what a run said, kept with its results (mmseg users expect a log in the work dir).

:func:`open_run_log` (the CLI, first process only) starts the file with the command line and the time,
and routes Lightning's and the benchmark's log records into it; :func:`say` prints a message and logs
it, so the table, the result paths and every note appear both on the terminal and in the file.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
import time
from pathlib import Path

LOGGERS = ("benchmark", "lightning.pytorch", "lightning.fabric")
log = logging.getLogger("benchmark")


def open_run_log(out_dir: str | os.PathLike[str], argv: list[str]) -> logging.Handler:
    """Append to ``out_dir/run.log``; return the handler (pass it to :func:`close_run_log`)."""
    handler = logging.FileHandler(Path(out_dir) / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    handler.setLevel(logging.INFO)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)
    log.propagate = False  # the benchmark's records go to the file; the terminal gets them through say()
    log.info("command: benchmark %s", " ".join(shlex.quote(a) for a in argv))
    log.info("started %s", time.strftime("%Y-%m-%d %H:%M:%S %Z"))
    return handler


def close_run_log(handler: logging.Handler | None) -> None:
    if handler is None:
        return
    for name in LOGGERS:
        logging.getLogger(name).removeHandler(handler)
    handler.close()


def seconds_since_start() -> float:
    """Seconds since this process started (Linux: from /proc, interpreter start included; elsewhere:
    since :mod:`benchmark` was imported)."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        start = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19]) / ticks
        return float(Path("/proc/uptime").read_text().split()[0]) - start
    except (OSError, ValueError, IndexError, AttributeError):
        import benchmark

        return time.monotonic() - benchmark.IMPORTED_AT


def say(text: str, stream=None) -> None:
    """Print ``text`` (default: stdout) and write it to the run log."""
    print(text, file=stream or sys.stdout)
    log.info("%s", text)
