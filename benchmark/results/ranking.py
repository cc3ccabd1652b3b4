"""Leaderboard tables and the ranking rule, computed from entries only (pure functions).

One table per (dataset, track, source). Columns are the union of the entries' targets: the white-box
targets (the source models) first, in source order, then the black-box targets by name.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from benchmark.errors import ResultError
from benchmark.results.entry import EntryMetadata, LeaderboardEntry
from benchmark.results.intervals import interval_of, mean_miou_draws
from benchmark.results.schema import BUILT_IN, CLEAN, DatasetInfo, SourceInfo
from benchmark.results.tracks import TrackInfo

RANKING_RULE = (
    "Within each table (one dataset, track and source), attacks are ranked by their mean adversarial "
    "mIoU over the black-box targets (targets that are not a source model; each target's mIoU is the "
    "mean over the entry's seeds); lower is stronger. Each mean has its 95 % interval (paired bootstrap "
    "over the images), and 'vs next' the interval of its difference from the next rank's mean, marked "
    "'not distinguishable' when it contains 0: those two ranks are not told apart by these images. The "
    "white-box mIoU (target = source) is shown beside it and does not enter the ranking. An entry "
    "that lacks a black-box target which another entry of the same table has is marked 'missing', is "
    "ranked after every complete entry, and is ordered among the incomplete entries by the mean over "
    "the black-box targets it has; an entry with no black-box target comes last. Ties (means equal "
    "after rounding to 10 decimals) are broken by attack name, then settings hash, then entry id."
)


@dataclass(frozen=True)
class Row:
    """One ranked entry. mIoU values are fractions; None where the entry lacks the target.

    ``blackbox_ci`` is the 95 % interval of ``blackbox_mean``; ``next_difference`` the interval of
    (this row's black-box mean minus the next row's), None for the last row or when the two are not
    comparable (other images or interval settings); ``tied_with_next`` says it contains 0. ``origin`` is
    "built-in" or the users' code the entry used (:attr:`LeaderboardEntry.origin_text`)."""

    rank: int
    attack: str
    settings_hash: str
    entry_id: str
    seeds: tuple[int, ...]
    blackbox_mean: float | None
    blackbox_ci: tuple[float, float] | None
    whitebox: float | None
    cells: tuple[float | None, ...]
    missing: tuple[str, ...]
    next_difference: tuple[float, float] | None
    tied_with_next: bool
    settings: dict = field(default_factory=dict)
    metadata: EntryMetadata | None = None
    entry_path: str = ""
    origin: str = BUILT_IN


@dataclass(frozen=True)
class Table:
    """Ranked rows of one (dataset, track, source); ``clean`` gives per target the (min, max) clean
    mIoU recorded by the entries (equal unless runs disagree)."""

    dataset: DatasetInfo
    track: TrackInfo
    source: SourceInfo
    targets: tuple[str, ...]
    white_box: tuple[bool, ...]
    clean: tuple[tuple[float, float], ...]
    rows: tuple[Row, ...]

    @property
    def key(self) -> str:
        """``<dataset>-<split>/<track>/<source>``."""
        return f"{self.dataset.name}-{self.dataset.split}/{self.track.name}/{self.source.id}"


def _comparable_dataset(d: DatasetInfo) -> tuple:
    return (d.name, d.split, d.split_size, d.input_policy, d.class_names, d.ignore_index)


def _check_consistent(entries: list[LeaderboardEntry]) -> None:
    first = entries[0]
    where = f"{first.dataset.name}-{first.dataset.split}/{first.track.name}/{first.source.id}"
    models: dict[str, tuple] = {}
    for e in entries:
        if _comparable_dataset(e.dataset) != _comparable_dataset(first.dataset):
            raise ResultError(f"{where}: entries disagree on the dataset (split size, input policy, "
                              f"classes or ignore_index); attack '{e.attack.name}' is not comparable")
        if e.track != first.track:
            raise ResultError(f"{where}: entries with different budgets share the track name")
        for m in e.models:
            code = None if m.origin is None else tuple(m.origin.sha256.items())  # a factory model's sources
            identity = (m.checkpoint_sha256, m.config, m.inference_mode, code)
            if models.setdefault(m.name, identity) != identity:
                raise ResultError(f"{where}: model '{m.name}' appears with different checkpoints, "
                                  f"configs, inference modes or factory sources (attack '{e.attack.name}')")


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return math.fsum(values) / len(values) if values else None


def rank_table(entries: Iterable[LeaderboardEntry]) -> Table:
    """Rank the entries of one (dataset, track, source) by :data:`RANKING_RULE`."""
    entries = list(entries)
    if not entries:
        raise ValueError("rank_table needs at least one entry")
    _check_consistent(entries)
    source = entries[0].source
    all_targets = {t for e in entries for t in e.targets}
    white = [t for t in source.models if t in all_targets]
    black = sorted(all_targets - set(source.models))
    targets = tuple(white + black)
    clean = tuple((min(e.miou(t, CLEAN) for e in entries if t in e.targets),
                   max(e.miou(t, CLEAN) for e in entries if t in e.targets)) for t in targets)

    def row_data(e: LeaderboardEntry) -> tuple:
        name = e.attack.name
        cells = tuple(e.miou(t, name) if t in e.targets else None for t in targets)
        missing = tuple(t for t in black if t not in e.targets)
        mean = _mean(e.miou(t, name) for t in black if t in e.targets)
        whitebox = _mean(e.miou(t, name) for t in white if t in e.targets)
        group = 2 if mean is None else (1 if missing else 0)
        key = (group, round(mean, 10) if mean is not None else 0.0, name, e.attack.settings_hash,
               e.content_hash)
        return key, e, (name, e.attack.settings_hash, e.content_hash, e.seeds, mean), (whitebox, cells, missing)

    ordered = sorted((row_data(e) for e in entries), key=lambda kv: kv[0])
    draws = [_blackbox_draws(e, black) for _, e, _, _ in ordered]
    rows = []
    for i, (_, e, head, tail) in enumerate(ordered):
        ci = interval_of(draws[i][1], e.intervals.level) if draws[i] else None
        following = draws[i + 1] if i + 1 < len(ordered) else None
        comparable = (draws[i] and following and draws[i][0] == following[0]
                      and e.intervals == ordered[i + 1][1].intervals and tail[2] == ordered[i + 1][3][2])
        difference = interval_of(draws[i][1] - following[1], e.intervals.level) if comparable else None
        tied = difference is not None and difference[0] <= 0 <= difference[1]
        rows.append(Row(i + 1, *head, ci, *tail, difference, tied, dict(e.attack.settings), e.metadata,
                        e.relative_path.as_posix(), e.origin_text))
    rows = tuple(rows)
    return Table(dataset=entries[0].dataset, track=entries[0].track, source=source, targets=targets,
                 white_box=tuple(t in source.models for t in targets), clean=clean, rows=rows)


def _blackbox_draws(entry: LeaderboardEntry, black: list[str]):
    """(image names, bootstrap draws of the entry's black-box mean) or None without black-box targets."""
    present = [t for t in black if t in entry.targets]
    if not present:
        return None
    keys = [[(t, entry.source.id, entry.attack.name, seed) for seed in entry.seeds] for t in present]
    return mean_miou_draws(entry.images, keys, len(entry.dataset.class_names), entry.intervals)


def build_tables(entries: Iterable[LeaderboardEntry]) -> tuple[Table, ...]:
    """One ranked table per (dataset, track, source), sorted by dataset, split, track, source."""
    groups: dict[tuple[str, str, str, str], list[LeaderboardEntry]] = {}
    for e in entries:
        groups.setdefault((e.dataset.name, e.dataset.split, e.track.name, e.source.id), []).append(e)
    return tuple(rank_table(groups[k]) for k in sorted(groups))
