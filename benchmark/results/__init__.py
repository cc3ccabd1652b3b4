"""Result files, their views and the leaderboard.

- :mod:`~benchmark.results.schema`: ``RunResult`` (``results.json``) and its parts;
- :mod:`~benchmark.results.io`: strict reading with migrations, atomic writing;
- :mod:`~benchmark.results.report`: Markdown table and heatmap of one run;
- :mod:`~benchmark.results.leaderboard`: ``submit`` and ``build``.

Importing this package is light: matplotlib and wandb are imported inside the functions that use them.
"""

from benchmark.results.entry import ENTRY_SCHEMA_VERSION, LeaderboardEntry, load_entries, read_entry
from benchmark.results.io import read_result, result_from_json, result_to_json, write_result
from benchmark.results.join import join_results
from benchmark.results.leaderboard import (
    build,
    check_submittable,
    leaderboard_tables,
    log_to_wandb,
    submit,
)
from benchmark.results.ranking import RANKING_RULE, Row, Table
from benchmark.results.report import results_heatmap, results_markdown
from benchmark.results.schema import (
    CLEAN,
    SCHEMA_VERSION,
    AttackInfo,
    Comparison,
    DatasetInfo,
    ImageRecord,
    IntervalInfo,
    MetricRecord,
    ModelInfo,
    NumericsInfo,
    Origin,
    PerturbationRecord,
    PerturbationSummary,
    Provenance,
    RunResult,
    SourceInfo,
    SummaryRecord,
    Timings,
    Versions,
)
from benchmark.results.tracks import TrackInfo, settings_hash, track_name

__all__ = [
    "ENTRY_SCHEMA_VERSION", "LeaderboardEntry", "RANKING_RULE", "Row", "Table", "build",
    "check_submittable", "join_results", "leaderboard_tables", "load_entries", "log_to_wandb", "read_entry", "submit",
    "CLEAN", "SCHEMA_VERSION", "AttackInfo", "Comparison", "DatasetInfo", "ImageRecord", "IntervalInfo",
    "MetricRecord", "ModelInfo", "NumericsInfo", "Origin", "PerturbationRecord", "PerturbationSummary", "Provenance",
    "RunResult", "SourceInfo", "SummaryRecord", "Timings", "TrackInfo", "Versions", "read_result", "result_from_json",
    "result_to_json", "results_heatmap", "results_markdown", "settings_hash", "track_name",
    "write_result",
]
