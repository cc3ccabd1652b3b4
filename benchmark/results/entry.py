"""``LeaderboardEntry``: one attack x source x dataset x track, split out of a ``RunResult``.

An entry carries everything needed to re-run it (``verify``): the dataset, every model's config,
checkpoint sha256 and inference mode, the attack's full flat settings, the seed, the adversarial
format and the versions; plus the clean and adversarial scores on each target. Run timings are not
part of an entry (they belong to the whole run), so re-submitting the same results gives the same
content hash and is recognised as a duplicate.

Entries are identified by their content hash: the first 12 hex digits of the sha256 of their
canonical JSON (sorted keys, no spaces). They live at
``<root>/entries/<dataset>-<split>/<track>/<source>/<attack>-<hash>.json``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from benchmark.errors import ResultError
from benchmark.results import codec
from benchmark.results.io import Migration, load_json, migrate, read_record, write_json_atomic
from benchmark.results.schema import (
    CLEAN,
    AttackInfo,
    DatasetInfo,
    ImageRecord,
    MetricRecord,
    ModelInfo,
    RunResult,
    SourceInfo,
    Versions,
    check_image_records,
)
from benchmark.results.tracks import TrackInfo, short_hash

ENTRY_SCHEMA_VERSION = 1
# Entry migrations, as for results (benchmark.results.io): version v -> raw dict of version v + 1.
ENTRY_MIGRATIONS: dict[int, Migration] = {}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.+=-]+$")


@dataclass(frozen=True)
class LeaderboardEntry:
    """One attack from one source on one dataset under one track, scored on each target.

    ``metrics`` holds, for each target, its "clean" record and its record under ``attack.name``;
    ``models`` are the source model(s) and the targets, with configs and checksums."""

    schema_version: int
    dataset: DatasetInfo
    track: TrackInfo
    source: SourceInfo
    attack: AttackInfo
    models: tuple[ModelInfo, ...]
    seed: int
    adv_format: str
    versions: Versions
    metrics: tuple[MetricRecord, ...]
    images: tuple[ImageRecord, ...]

    def __post_init__(self) -> None:
        if self.schema_version != ENTRY_SCHEMA_VERSION:
            raise ResultError(f"entry schema_version must be {ENTRY_SCHEMA_VERSION}, "
                              f"got {self.schema_version}")
        if self.attack.track != self.track:
            raise ResultError(f"entry track {self.track.name!r} differs from the attack's track")
        conditions = {(r.target, r.condition) for r in self.metrics}
        expected = {(t, c) for t in self.targets for c in (CLEAN, self.attack.name)}
        if conditions != expected or len(conditions) != len(self.metrics):
            raise ResultError(f"entry '{self.attack.name}': metrics must hold clean and attacked "
                              f"records of each target exactly once")
        check_image_records(self.images, {(r.target, r.condition): r for r in self.metrics}, self.dataset)

    @property
    def targets(self) -> tuple[str, ...]:
        """Target names in model order."""
        return tuple(m.name for m in self.models if "target" in m.roles)

    def miou(self, target: str, condition: str) -> float:
        """mIoU of ``target`` under ``condition`` ("clean" or the attack's name)."""
        for r in self.metrics:
            if r.target == target and r.condition == condition:
                return r.miou
        raise KeyError((target, condition))

    def model(self, name: str) -> ModelInfo:
        """The model record named ``name``."""
        return next(m for m in self.models if m.name == name)

    @property
    def content_hash(self) -> str:
        """First 12 hex digits of the sha256 of the entry's canonical JSON."""
        return short_hash(codec.encode(self))

    @property
    def relative_path(self) -> Path:
        """Where the entry lives under ``<root>/entries``."""
        parts = [f"{self.dataset.name}-{self.dataset.split}", self.track.name, self.source.id,
                 f"{self.attack.name}-{self.content_hash}.json"]
        for part in parts[:-1] + [self.attack.name]:
            if not _SAFE_NAME.match(part) or part in (".", ".."):
                raise ResultError(f"name {part!r} cannot be used in a leaderboard path "
                                  "(allowed: letters, digits and _ . + = -)")
        return Path(*parts)


def entries_from_result(result: RunResult) -> tuple[LeaderboardEntry, ...]:
    """Split a run into one entry per attack (each attack has its own track)."""
    entries = []
    for attack in result.attacks:
        if attack.track is None:
            raise ResultError(f"attack '{attack.name}' has no track (its settings lack eps or steps)")
        entries.append(LeaderboardEntry(
            schema_version=ENTRY_SCHEMA_VERSION, dataset=result.dataset, track=attack.track,
            source=result.source, attack=attack, models=result.models, seed=result.seed,
            adv_format=result.adv_format, versions=result.versions,
            metrics=tuple(r for r in result.metrics if r.condition in (CLEAN, attack.name)),
            images=tuple(r for r in result.images if r.condition in (CLEAN, attack.name))))
    return tuple(entries)


def write_entry(path: str | os.PathLike[str], entry: LeaderboardEntry) -> None:
    """Write one entry atomically."""
    write_json_atomic(path, codec.encode(entry))


def read_entry(path: str | os.PathLike[str]) -> LeaderboardEntry:
    """Read one entry strictly (missing/unknown keys, wrong types, old versions via migrations)."""
    return read_record(path, LeaderboardEntry, ENTRY_SCHEMA_VERSION, ENTRY_MIGRATIONS)


def read_named_entry(path: str | os.PathLike[str]) -> LeaderboardEntry:
    """:func:`read_entry`, refusing a file whose name does not carry the hash of its content as
    stored (an entry edited after submission)."""
    path = Path(path)
    raw = load_json(path)
    stored_hash = short_hash(raw)  # hash of the file as stored, before any migration
    entry = codec.decode(LeaderboardEntry, migrate(raw, ENTRY_SCHEMA_VERSION, ENTRY_MIGRATIONS, str(path)), str(path))
    if path.name != f"{entry.attack.name}-{stored_hash}.json":
        raise ResultError(f"{path}: content does not match its location (its content hash is {stored_hash}): "
                          "the entry was edited (entries are never edited by hand)")
    return entry


def load_entries(root: str | os.PathLike[str]) -> tuple[LeaderboardEntry, ...]:
    """Every entry under ``<root>/entries``, checking that each sits where its content says (a file
    edited by hand or moved no longer matches its hash and is refused)."""
    base = Path(root) / "entries"
    entries = []
    for path in sorted(base.rglob("*.json")) if base.is_dir() else []:
        entry = read_named_entry(path)
        expected = entry.relative_path.with_name(path.name)
        if path.relative_to(base) != expected:
            raise ResultError(f"{path}: content does not match its location; expected "
                              f"entries/{expected} (entries are never edited by hand)")
        entries.append(entry)
    return tuple(entries)
