"""Stopping a run cleanly on a signal: after the batch in flight, with the journal consistent.

:func:`install` (called by the CLI around the Trainer) makes SIGINT (Ctrl-C) request a stop instead
of raising ``KeyboardInterrupt`` mid-batch; a second SIGINT stops at once. SIGTERM is Lightning's
own: it sets ``trainer.received_sigterm`` and Lightning raises ``SIGTERMException`` after the batch
in flight. Either way the results writer has journalled every finished batch, and the CLI exits with
128 + the signal number (130, 143) and one line saying how to resume.
"""

from __future__ import annotations

import signal

from benchmark.errors import BenchmarkError

EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}
_requested: list[str] = []  # the signal that asked this process to stop (at most one)


class Interrupted(BenchmarkError):
    """A run stopped on a signal; ``exit_code`` is 128 + the signal number."""

    def __init__(self, signal_name: str, message: str = ""):
        super().__init__(message or f"stopped by {signal_name}")
        self.signal_name = signal_name
        self.exit_code = EXIT_CODES.get(signal_name, 1)


def _on_sigint(signum, frame) -> None:
    if _requested:
        raise KeyboardInterrupt  # a second Ctrl-C: do not wait for the batch
    _requested.append("SIGINT")


def install() -> None:
    """Route SIGINT through :func:`stop_if_requested` (main thread only; a no-op elsewhere)."""
    _requested.clear()
    try:
        signal.signal(signal.SIGINT, _on_sigint)
    except ValueError:
        pass  # not the main thread


def stop_if_requested(batch_done: bool) -> None:
    """Raise :class:`Interrupted` if a stop was requested (called after a batch was journalled)."""
    if _requested and batch_done:
        raise Interrupted(_requested[0])
