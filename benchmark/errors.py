"""Project exceptions.

Each carries a one-line message that names the file, key or value at fault. The CLI turns any of
them into ``error: <message>`` on stderr and a non-zero exit, before any work starts.
"""


class BenchmarkError(Exception):
    """Base class of every error the benchmark reports to users."""


class ConfigError(BenchmarkError, ValueError):
    """A setting, YAML key, registry name or option value is invalid."""


class DataError(BenchmarkError):
    """A dataset file or directory is missing, unreadable or inconsistent."""


class CheckpointError(BenchmarkError):
    """A checkpoint file is missing, unsafe, corrupt or does not match its model."""


class ModelError(BenchmarkError):
    """A model computes non-finite logits or input gradients (broken weights or numerics); raised during the
    run, at the batch concerned."""


class ResultError(BenchmarkError):
    """A result file or leaderboard entry is malformed, incomplete or inconsistent."""
