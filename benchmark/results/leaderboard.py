"""The leaderboard: ``submit`` results as entries, ``build`` the pages from the entries only.

Layout of a leaderboard root::

    <root>/entries/<dataset>-<split>/<track>/<source>/<attack>-<content hash>.json

``submit`` accepts only complete, comparable runs (see :func:`check_submittable`); ``build`` writes
``leaderboard.md``, ``index.html`` and ``heatmaps/<dataset>-<split>__<track>__<source>.png`` into an
output directory. The ranking rule is :data:`benchmark.results.ranking.RANKING_RULE`; track names are
defined by :func:`benchmark.results.tracks.track_name`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from benchmark.errors import ResultError
from benchmark.results.entry import (
    EntryMetadata,
    LeaderboardEntry,
    entries_from_result,
    load_entries,
    write_entry,
)
from benchmark.results.io import read_result
from benchmark.results.ranking import Table, build_tables
from benchmark.results.render import header, heatmap_name, leaderboard_html, leaderboard_markdown, row_cells
from benchmark.results.report import heatmap_png
from benchmark.results.audit import check_consistency
from benchmark.results.schema import SHA256_RE, RunResult

__all__ = ["build", "check_submittable", "leaderboard_tables", "log_to_wandb", "submit"]


#: A model's ``config`` that names a Python factory (``pkg.mod:fn``, ``path/file.py:fn``), not an mmseg config.
FACTORY_SPEC = re.compile(r"^[^:]+:[A-Za-z_]\w*$")


def check_users_code_recorded(result: RunResult, file: str) -> None:
    """Refuse a result whose attack uses parts that are not built in (a plugin's) without recording the
    plugin's provenance: nobody could re-run it."""
    from benchmark.attacks.registry import builtin_parts

    builtin = builtin_parts()
    for a in result.attacks:
        name = a.settings.get("attack")  # the canonical name every result of this code records
        foreign = [part for part in str(name).split("+") if part not in builtin] if name else []
        if foreign and a.origin is None:
            raise ResultError(f"{file}: attack '{a.name}' uses plugin code ({', '.join(foreign)}) but records no "
                              "origin (import name, version, source sha256); re-run it with this version")
    for m in result.models:
        if FACTORY_SPEC.match(m.config or "") and m.origin is None:
            raise ResultError(f"{file}: model '{m.name}' is built by the factory {m.config} but records no origin "
                              "(import name, version, source sha256); re-run it with this version")


def check_submittable(result: RunResult, file: str) -> None:
    """Raise ResultError (one line naming ``file``) unless the run is complete and comparable:
    every model has a 64-hex checkpoint sha256; dataset name and split are set and images were
    evaluated; the whole split was evaluated (a run with fewer images, e.g. under an image limit, is
    partial and not comparable); there is at least one target and one attack; every attack's settings
    define eps and steps (hence a track); every version string is set; every metric equals its
    recomputation from the per-image records (a hand-edited number is refused)."""
    d = result.dataset
    for m in result.models:
        if m.checkpoint_sha256 is None or not SHA256_RE.match(m.checkpoint_sha256):
            raise ResultError(f"{file}: model '{m.name}' has no checkpoint sha256; only runs with "
                              "checksummed checkpoints can be submitted")
        if not m.config:
            raise ResultError(f"{file}: model '{m.name}' has no config")
    check_users_code_recorded(result, file)
    if not d.name or not d.split or d.num_images < 1:
        raise ResultError(f"{file}: dataset name, split and a positive num_images are required")
    if d.shard is not None:
        raise ResultError(f"{file}: shard {d.shard.text} of a job of {d.shard.job_images} images; join the job's "
                          f"{d.shard.count} shard results with `benchmark summarize SHARD_DIR... --out DIR` and "
                          "submit DIR/results.json")
    if d.num_images != d.split_size or (d.image_limit is not None and d.image_limit < d.split_size):
        limit = "" if d.image_limit is None else f", image_limit {d.image_limit}"
        raise ResultError(f"{file}: partial run ({d.num_images} of {d.split_size} images of "
                          f"{d.name}/{d.split}{limit}); only full-split results are comparable")
    if not result.targets:
        raise ResultError(f"{file}: no target model")
    if not result.attacks:
        raise ResultError(f"{file}: no attack to submit")
    for a in result.attacks:
        if not a.settings or a.track is None:
            raise ResultError(f"{file}: attack '{a.name}' lacks its settings (eps and steps at least)")
    for name, value in vars(result.versions).items():
        if not value:
            raise ResultError(f"{file}: versions.{name} is empty")
    check_consistency(result, file)


def submit(result_path: str | os.PathLike[str], leaderboard_root: str | os.PathLike[str],
           metadata: EntryMetadata | None = None) -> tuple[Path, ...]:
    """Validate ``results.json`` and store one entry per (source, attack), with the optional
    ``metadata``; return the written entry paths.

    Nothing is written if any entry is a duplicate (same content hash already present)."""
    result = read_result(result_path)
    check_submittable(result, str(result_path))
    base = Path(leaderboard_root) / "entries"
    planned: list[tuple[Path, LeaderboardEntry]] = []
    for entry in entries_from_result(result, metadata):
        path = base / entry.relative_path
        existing = sorted(base.rglob(f"*-{entry.content_hash}.json")) if base.is_dir() else []
        if existing or path.exists():
            where = (existing[0] if existing else path).relative_to(Path(leaderboard_root))
            raise ResultError(f"{result_path}: duplicate: attack '{entry.attack.name}' from this run "
                              f"is already on the leaderboard as {where}")
        planned.append((path, entry))
    for path, entry in planned:
        write_entry(path, entry)
    return tuple(path for path, _ in planned)


def leaderboard_tables(leaderboard_root: str | os.PathLike[str]) -> tuple[Table, ...]:
    """Ranked tables (one per dataset, track and source) from the stored entries."""
    return build_tables(load_entries(leaderboard_root))


def build(leaderboard_root: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> tuple[Path, ...]:
    """Generate ``leaderboard.md``, ``index.html`` and the heatmaps from the entries only.

    Stale PNGs in ``<out_dir>/heatmaps`` are removed first, so the output mirrors the entries."""
    tables = leaderboard_tables(leaderboard_root)
    out = Path(out_dir)
    heat_dir = out / "heatmaps"
    heat_dir.mkdir(parents=True, exist_ok=True)
    for old in heat_dir.glob("*.png"):
        old.unlink()
    written, heatmaps = [], {}
    for table in tables:  # first, so that the page can embed them
        path = heat_dir / heatmap_name(table)
        heatmap_png(path, [r.cells for r in table.rows], [f"{r.rank}. {r.attack}" for r in table.rows],
                    [f"{t} (wb)" if wb else t for t, wb in zip(table.targets, table.white_box)],
                    f"Adversarial mIoU (%): {table.key}")
        heatmaps[table.key] = path
    for name, text in (("leaderboard.md", leaderboard_markdown(tables)),
                       ("index.html", leaderboard_html(tables, heatmaps))):
        (out / name).write_text(text, encoding="utf-8")
        written.append(out / name)
    return tuple([*written, *heatmaps.values()])


def log_to_wandb(tables: Sequence[Table], project: str, mode: str = "offline",
                 name: str | None = None) -> str:
    """Log each table as a ``wandb.Table`` under ``leaderboard/<dataset>-<split>/<track>/<source>``.

    Columns and cells are the page's (text, as displayed: percentages with intervals). Runs offline by
    default; W&B directories follow the ``WANDB_*`` environment variables. Returns the run directory.
    """
    import wandb

    run = wandb.init(project=project, mode=mode, name=name, job_type="leaderboard",
                     config={"tables": [t.key for t in tables]})
    try:
        for table in tables:
            columns = header(table)
            data = []
            for row in table.rows:
                data.append(row_cells(row, table))
            run.log({f"leaderboard/{table.key}": wandb.Table(columns=columns, data=data)})
        return str(run.dir)
    finally:
        run.finish()
