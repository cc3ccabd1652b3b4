"""Stopping a run cleanly on a signal: after the batch in flight, with the journal consistent.

:func:`install` (called by the CLI around the Trainer) makes SIGINT (Ctrl-C) request a stop instead
of raising ``KeyboardInterrupt`` mid-batch; a second SIGINT stops at once. SIGTERM is Lightning's
own: it sets ``trainer.received_sigterm`` and Lightning raises ``SIGTERMException`` after the batch
in flight. Under SLURM, SIGUSR1 (``#SBATCH --signal=USR1@120``) requests a stop too, and the CLI then
requeues the job (``scontrol requeue``), which resumes from the journal; Lightning's own requeue,
which would save a checkpoint of every model first, is turned off. Either way the results writer has
journalled every finished batch, and the CLI exits with 128 + the signal number (130, 143, 138) and
one line saying how to resume.
"""

from __future__ import annotations

import os
import signal
import subprocess

from benchmark.errors import BenchmarkError

EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143, "SIGUSR1": 138}
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


def _on_sigusr1(signum, frame) -> None:
    if not _requested:
        _requested.append("SIGUSR1")


def install() -> None:
    """Route SIGINT (and, under SLURM, SIGUSR1) through :func:`stop_if_requested` (main thread only)."""
    _requested.clear()
    try:
        signal.signal(signal.SIGINT, _on_sigint)
        if under_slurm():
            signal.signal(signal.SIGUSR1, _on_sigusr1)
    except ValueError:
        pass  # not the main thread


def under_slurm() -> bool:
    return bool(os.environ.get("SLURM_JOB_ID"))


def requeue_slurm_job() -> str:
    """``scontrol requeue`` this job (array jobs: its task); return a line saying what happened."""
    job = os.environ["SLURM_JOB_ID"]
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    try:
        done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"requeueing SLURM job {job} failed ({err}); resubmit the job to resume"
    if done.returncode != 0:
        return f"requeueing SLURM job {job} failed ({done.stderr.strip() or done.returncode}); resubmit it to resume"
    return f"requeued SLURM job {job}: it resumes from the journal"


def stop_if_requested(batch_done: bool) -> None:
    """Raise :class:`Interrupted` if a stop was requested (called after a batch was journalled)."""
    if _requested and batch_done:
        raise Interrupted(_requested[0])
