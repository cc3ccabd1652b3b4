"""The messages the project knows to be harmless, and the narrow filters that silence exactly them.

Each entry is one message (a regex matched at its start, case-insensitive, as :func:`warnings.filterwarnings`
matches), from one module of a dependency (the module a warning is attributed to, or the logger that logs
the message), with the reason it means nothing for a benchmark run. Nothing else is filtered: the same
text from any other module, any other warning of these libraries, and every warning of the project's own
code still prints. ``tests/lightning/test_quiet_screen.py`` runs the default CLI and fails on any line that
looks like a warning and is not listed here.

Used where the messages arise: :func:`install` by the Lightning CLI before it builds the Trainer (for the
whole process), :func:`ignore_known_warnings` inside ``mmseg_adapter._quiet_imports`` (OpenMMLab imports
and builds from the Python API too).
"""

from __future__ import annotations

import logging
import re
import warnings
from dataclasses import dataclass


@dataclass(frozen=True)
class Known:
    message: str  # regex, matched at the start of the message, case-insensitive
    source: str  # regex, matched against the whole module name (warnings) or logger name (log records)
    category: type[Warning]  # warnings of this class and its subclasses (log records: unused)
    why: str


KNOWN_WARNINGS: tuple[Known, ...] = (
    Known(r"Fail to import ``MultiScaleDeformableAttention`` from ``mmcv\.ops", r"mmcv\.cnn\.bricks\.transformer",
          UserWarning,
          "mmcv-lite ships no compiled ops (benchmark/models/mmcv_ops_stub.py answers ModuleNotFoundError for "
          "them, as designed); only deformable-attention models need this op, none is in the zoo, and a config "
          "that needs it fails to build with its own error. mmseg imports it on every model build."),
    Known(r"pkg_resources is deprecated as an API", r"mmengine\.utils\.package_utils|importlib", UserWarning,
          "setuptools' notice to mmengine, whose is_installed() imports (then reloads, hence importlib) "
          "pkg_resources while reading a config; the pinned setuptools<81 still has it (docs/how-to/install.md)."),
    Known(r"``build_loss`` would be deprecated soon", r"mmseg\.models\.builder", UserWarning,
          "mmseg's own decode heads call its old loss builder; nothing for a user to change."),
    Known(r"Default ``avg_non_ignore`` is False", r"mmseg\.models\.losses\.cross_entropy_loss", UserWarning,
          "about the training loss a decode head builds; evaluation and the attacks never call it (the attacks "
          "compute their own losses)."),
    Known(r"LightningCLI's args parameter is intended", r"lightning\.pytorch\.cli", UserWarning,
          "the CLI passes its arguments as args= and leaves sys.argv the real command line on purpose, so that "
          "DDP can relaunch it (benchmark/lightning/cli.py, _make)."),
    Known(r"The '\w+' does not have many workers", r"lightning\.pytorch\.trainer\.connectors\.data_connector",
          UserWarning,
          "loading a batch is negligible next to attacking it (many forward and backward passes); "
          "--data.num_workers sets the workers."),
    Known(r"Total length of `DataLoader` across ranks is zero", r"lightning\.pytorch\.utilities\.data", UserWarning,
          "a resumed run whose journal already holds every image has nothing left to attack; it then writes "
          "its result from the journal (benchmark/results/journal.py)."),
    Known(r"Checkpoint directory .* exists and is not empty", r"lightning\.pytorch\.callbacks\.model_checkpoint",
          UserWarning, "the benchmark trains nothing and writes no Lightning checkpoints."),
    Known(r"`isinstance\(treespec, LeafSpec\)` is deprecated", r"lightning\.pytorch\.utilities\._pytree",
          FutureWarning, "Lightning's own use of a torch API (both pinned); nothing for a user to change."),
)

KNOWN_LOG_MESSAGES: tuple[Known, ...] = (
    Known(r"\W*Tip: .*\blitlogger\b", r"lightning\.(pytorch|fabric)\.utilities\.rank_zero", Warning,
          "Lightning's advertisement for its cloud logger, logged by every Trainer without a LitLogger; "
          "the benchmark logs to W&B or CSV (--logger)."),
)


def ignore_known_warnings() -> None:
    """Ignore each known warning, by message, category and module, in the current warning filters."""
    for known in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=known.message, category=known.category,
                                module=rf"(?:{known.source})\Z")


class KnownLogFilter(logging.Filter):
    """Drops the known log messages of :data:`KNOWN_LOG_MESSAGES`; every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(re.fullmatch(known.source, record.name) and re.match(known.message, record.getMessage(), re.I)
                       for known in KNOWN_LOG_MESSAGES)


_LOG_FILTER = KnownLogFilter()
_FILTERED_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


def install() -> None:
    """The known warnings ignored and the known log messages dropped for the rest of the process (idempotent).

    A logger's filter sees the records logged on that logger, so the filter goes on the loggers that log
    the messages (Lightning's rank-zero helpers log through one of the two), not on their parents."""
    ignore_known_warnings()
    for name in _FILTERED_LOGGERS:
        logging.getLogger(name).addFilter(_LOG_FILTER)  # adding the same filter twice keeps one


def is_known(line: str) -> bool:
    """Whether a line of output is one of the known messages (as ``file:line: Category: message`` or logged)."""
    text = re.sub(r"^.*?:\d+: \w+: ", "", line.strip())
    return any(re.match(known.message, text, re.I) for known in (*KNOWN_WARNINGS, *KNOWN_LOG_MESSAGES))
