"""``LeaderboardEntry``: one attack x source x dataset x track, split out of a ``RunResult``.

An entry carries everything needed to re-run it (``verify``): the dataset, every model's config,
checkpoint sha256 and inference mode, the attack's full flat settings, the origin (import spec, version,
source digests) of any users' code among them, the seed, the adversarial format and the versions; plus
the clean and adversarial scores on each target. Run timings are not part of an entry (they belong to
the whole run), so re-submitting the same results gives the same content hash and is recognised as a
duplicate.

Entries are identified by their content hash: the first 12 hex digits of the sha256 of their
canonical JSON (sorted keys, no spaces). They live at
``<root>/entries/<dataset>-<split>/<track>/<source>/<attack>-<hash>.json``.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path

from benchmark.errors import ResultError
from benchmark.results import codec
from benchmark.results.io import Migration, load_json, migrate, read_record, write_json_atomic
from benchmark.results.migrations import entry_v1_to_v2
from benchmark.results.schema import (
    BUILT_IN,
    CLEAN,
    AttackInfo,
    DatasetInfo,
    ImageRecord,
    IntervalInfo,
    MetricRecord,
    ModelInfo,
    NumericsInfo,
    Origin,
    PerturbationRecord,
    PerturbationSummary,
    RunResult,
    SourceInfo,
    SummaryRecord,
    Versions,
    check_image_records,
    check_perturbation_records,
)
from benchmark.results.tracks import TrackInfo, short_hash

ENTRY_SCHEMA_VERSION = 2
# Entry migrations, as for results (benchmark.results.io): version v -> raw dict of version v + 1.
ENTRY_MIGRATIONS: dict[int, Migration] = {1: entry_v1_to_v2}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.+=-]+$")


@dataclass(frozen=True)
class EntryMetadata:
    """Who submitted an entry and where the method comes from (all optional, shown on the page):
    ``paper`` (title or URL), ``authors``, ``venue``, ``date`` (ISO, e.g. 2024-06-17), ``code`` (URL)."""

    paper: str | None = None
    authors: str | None = None
    venue: str | None = None
    date: str | None = None
    code: str | None = None

    def __post_init__(self) -> None:
        if self.date is not None and not re.match(r"^\d{4}(-\d{2}(-\d{2})?)?$", self.date):
            raise ResultError(f"entry metadata: date must be YYYY, YYYY-MM or YYYY-MM-DD, got {self.date!r}")
        for name in ("code",):
            value = getattr(self, name)
            if value is not None and not value.startswith(("https://", "http://")):
                raise ResultError(f"entry metadata: {name} must be an http(s) URL, got {value!r}")


@dataclass(frozen=True)
class LeaderboardEntry:
    """One attack from one source on one dataset under one track, scored on each target.

    ``metrics`` holds, for each target, its "clean" record and its record under ``attack.name`` for
    each of ``seeds``; ``summaries`` the seed mean per target with its interval; ``models`` are the
    source model(s) and the targets, with configs and checksums."""

    schema_version: int
    dataset: DatasetInfo
    track: TrackInfo
    source: SourceInfo
    attack: AttackInfo
    models: tuple[ModelInfo, ...]
    seeds: tuple[int, ...]
    adv_format: str
    intervals: IntervalInfo
    versions: Versions
    numerics: NumericsInfo | None
    metrics: tuple[MetricRecord, ...]
    summaries: tuple[SummaryRecord, ...]
    perturbation_summaries: tuple[PerturbationSummary, ...]
    metadata: EntryMetadata | None
    images: tuple[ImageRecord, ...]
    perturbations: tuple[PerturbationRecord, ...]

    def __post_init__(self) -> None:
        if self.schema_version != ENTRY_SCHEMA_VERSION:
            raise ResultError(f"entry schema_version must be {ENTRY_SCHEMA_VERSION}, "
                              f"got {self.schema_version}")
        if self.attack.track != self.track:
            raise ResultError(f"entry track {self.track.name!r} differs from the attack's track")
        keys = {r.key for r in self.metrics}
        expected = {k for t in self.targets for k in
                    [(t, None, CLEAN, None), *((t, self.source.id, self.attack.name, s) for s in self.seeds)]}
        if keys != expected or len(keys) != len(self.metrics):
            raise ResultError(f"entry '{self.attack.name}': metrics must hold the clean record and one attacked "
                              f"record per seed of each target, exactly once")
        if sorted(r.target for r in self.summaries) != sorted(self.targets):
            raise ResultError(f"entry '{self.attack.name}': one seed summary per target")
        check_image_records(self.images, {r.key: r for r in self.metrics}, self.dataset)
        check_perturbation_records(self.perturbations, self.source_ids, (self.attack,), self.seeds, self.dataset)

    @property
    def targets(self) -> tuple[str, ...]:
        """Target names in model order."""
        return tuple(m.name for m in self.models if "target" in m.roles)

    @property
    def source_ids(self) -> tuple[str, ...]:
        return (self.source.id,)

    @property
    def attack_names(self) -> tuple[str, ...]:
        return (self.attack.name,)

    @property
    def comparisons(self) -> tuple:
        """An entry holds one attack: nothing to compare (kept for :func:`check_consistency`)."""
        return ()

    def miou(self, target: str, condition: str) -> float:
        """mIoU of ``target`` under ``condition``: "clean", or the attack's name (the mean over seeds)."""
        if condition == CLEAN:
            return next(r.miou for r in self.metrics if r.target == target and r.condition == CLEAN)
        return self.summary(target).miou_mean

    def summary(self, target: str) -> SummaryRecord:
        """The seed summary of ``target`` (KeyError if the entry lacks it)."""
        for r in self.summaries:
            if r.target == target:
                return r
        raise KeyError(target)

    def model(self, name: str) -> ModelInfo:
        """The model record named ``name``."""
        return next(m for m in self.models if m.name == name)

    @property
    def origins(self) -> tuple[Origin, ...]:
        """The origins of the users' code the entry used: the attack's, then its models' (in model
        order), each once; empty when the attack and every model are built in."""
        found: list[Origin] = []
        for origin in (self.attack.origin, *(m.origin for m in self.models)):
            if origin is not None and origin not in found:
                found.append(origin)
        return tuple(found)

    @property
    def uses_user_code(self) -> bool:
        """True when the attack or a model of the entry is users' code (a plugin or a model factory)."""
        return bool(self.origins)

    @property
    def origin_text(self) -> str:
        """``built-in``, or the users' code it used: ``my_pkg.attacks 0.1.0, path/to/model.py``."""
        return ", ".join(o.label for o in self.origins) or BUILT_IN

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


def entries_from_result(result: RunResult, metadata: EntryMetadata | None = None) -> tuple[LeaderboardEntry, ...]:
    """Split a run into one entry per (source, attack) (each attack has its own track). An entry's
    models are its source's models and the run's targets; ``metadata`` goes into every entry."""
    entries = []
    for source in result.sources:
        models = tuple(dataclasses.replace(m, roles=tuple(r for r in m.roles
                                                          if r == "target" or m.name in source.models))
                       for m in result.models if "target" in m.roles or m.name in source.models)
        for attack in result.attacks:
            if attack.track is None:
                raise ResultError(f"attack '{attack.name}' has no track (its settings lack eps or steps)")

            def keep(r, source=source, attack=attack) -> bool:
                return r.condition == CLEAN or (r.source == source.id and r.condition == attack.name)

            entries.append(LeaderboardEntry(
                schema_version=ENTRY_SCHEMA_VERSION, dataset=result.dataset, track=attack.track,
                source=source, attack=attack, models=models, seeds=result.seeds,
                adv_format=result.adv_format, intervals=result.intervals, versions=result.versions,
                numerics=result.numerics,
                metrics=tuple(r for r in result.metrics if keep(r)),
                summaries=tuple(r for r in result.summaries if r.source == source.id and r.condition == attack.name),
                perturbation_summaries=tuple(r for r in result.perturbation_summaries
                                             if r.source == source.id and r.condition == attack.name),
                metadata=metadata,
                images=tuple(r for r in result.images if keep(r)),
                perturbations=tuple(r for r in result.perturbations
                                    if r.source == source.id and r.condition == attack.name)))
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
