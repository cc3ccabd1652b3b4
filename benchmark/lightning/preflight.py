"""Checks run by the CLI before the Trainer starts: a mistake costs seconds, not an attacked split.

In order: trainer options that would score part of the split, the accelerator, W&B online login and
reachability (short timeout), the run directory (writable, locked for this run, earlier results moved
aside), and the data (every sample decoded and checked, :mod:`benchmark.data.preflight`). Each failure
is one :class:`~benchmark.errors.ConfigError` / ``DataError`` / ``ResultError`` line.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from benchmark.errors import ConfigError
from benchmark.results.journal import journal_dir, remove_journals
from benchmark.results.outdir import RESULT_FILES, RunLock, move_aside, probe

WANDB_TIMEOUT_S = 5.0


def launched_rank() -> int:
    """The global rank of a process started by a DDP launcher or SLURM (0 for the process a user started)."""
    for name in ("RANK", "SLURM_PROCID"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    local, node = os.environ.get("LOCAL_RANK", "0"), os.environ.get("NODE_RANK", "0")
    return int(local) + int(node) if local.isdigit() and node.isdigit() else 0


def check_trainer_options(trainer: dict) -> None:
    """Refuse options that evaluate part of the split (the writer would refuse the result at the end)."""
    for key, complete in (("limit_val_batches", (None, 1.0)), ("fast_dev_run", (None, False, 0)),
                          ("overfit_batches", (None, 0, 0.0))):
        value = trainer.get(key)
        if value not in complete:
            raise ConfigError(f"trainer.{key} {value!r} would score part of the split; use --data.limit N to "
                              "evaluate the first N images (a partial result)")


def check_accelerator(accelerator) -> None:
    import torch

    name = str(accelerator or "auto").lower()
    if name in ("gpu", "cuda") and not torch.cuda.is_available():
        build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise ConfigError(f"trainer.accelerator {name}: no CUDA device is visible (torch {torch.__version__}, "
                          f"{build}); use --trainer.accelerator cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("trainer.accelerator mps: MPS is not available here; use --trainer.accelerator cpu")


def check_wandb_online(timeout_s: float = WANDB_TIMEOUT_S) -> None:
    """A login exists (``WANDB_API_KEY`` or the netrc entry ``wandb login`` writes) and the W&B host
    answers within ``timeout_s``."""
    if not (os.environ.get("WANDB_API_KEY") or _netrc_has_wandb()):
        raise ConfigError("--wandb.mode online needs a W&B login: run `wandb login` (or set WANDB_API_KEY), "
                          "or log offline (the default) and `wandb sync` later")
    base = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").rstrip("/")
    try:
        urllib.request.urlopen(base + "/", timeout=timeout_s).close()
    except urllib.error.HTTPError:
        pass  # the server answered (with an error status for a bare GET): reachable
    except (OSError, ValueError) as err:  # URLError, timeouts, TLS failures
        reason = getattr(err, "reason", err)
        raise ConfigError(f"--wandb.mode online: {base} cannot be reached ({reason}; waited at most {timeout_s:g} s); "
                          "log offline (the default) and `wandb sync` later") from None


def _netrc_has_wandb() -> bool:
    import netrc

    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


KEPT_ON_RESUME = ("adv", "run.log", "config.yaml")  # a resumed run's own: its saved PNGs, log and configuration


def prepare_out_dir(out_dir: str | os.PathLike[str], fresh: bool, takeover: bool = False) -> RunLock:
    """Probe and lock ``out_dir`` (``takeover``: take the lock from a run that is gone); remove the
    temporary files of writes a killed run left; move earlier results aside (and, with ``fresh``, the
    journal). A run that resumes a journal keeps its saved PNGs, run.log and config.yaml."""
    path = probe(out_dir)
    lock = RunLock(path, takeover=takeover).acquire()
    try:
        if fresh and journal_dir(path).is_dir():
            remove_journals(path)
        for partial in [*path.glob(".*.tmp"), *path.glob("adv/**/.*.tmp")]:
            partial.unlink(missing_ok=True)  # an atomic write cut short: never a result
        resuming = any(journal_dir(path).glob("rank-*.jsonl"))
        kept = KEPT_ON_RESUME if resuming else ()
        moved = move_aside(path, patterns=[p for p in RESULT_FILES if p not in kept])
        if moved is not None:
            print(f"note: moved the results of an earlier run in {path} to {moved}", file=sys.stderr)
    except BaseException:
        lock.release()
        raise
    return lock


def remove_empty_folders(out_dir: str | os.PathLike[str], names=("wandb", "csv")) -> None:
    """Remove logger folders that hold no file (an interrupted or refused run's)."""
    for name in names:
        folder = Path(out_dir) / name
        if folder.is_dir() and not any(p.is_file() for p in folder.rglob("*")):
            for sub in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                sub.rmdir()
            folder.rmdir()
