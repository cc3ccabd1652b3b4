"""The progress journal of a run: per-batch image records appended durably, for an exact resume.

``OUT_DIR/journal/rank-<r>.jsonl`` holds, per DDP rank, one JSON line of header -- the run's
fingerprint -- and then one line per finished batch: the batch's image names, its per-image records
(every target and condition), its perturbation records and the PNG files it saved. Each line is flushed and fsynced before the
next batch starts, so a killed run loses at most the batch in flight. A rerun reads every rank's
file (the world size may have changed), attacks only the images not journalled, and merges the
records; the result is then exactly an uninterrupted run's, because every number is derived from the
per-image records.

A journal whose fingerprint differs from the run's is never mixed in: :class:`JournalMismatch` names the
part that differs. A last line cut short by a kill (no newline, or not JSON) is dropped, and
truncated away before the next append.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.errors import ResultError
from benchmark.results import codec
from benchmark.results.adv_manifest import SavedFile
from benchmark.results.schema import ImageRecord, PerturbationRecord

JOURNAL_DIR = "journal"
JOURNAL_VERSION = 1


class JournalMismatch(ResultError):
    """The journal in ``out_dir`` was written by another configuration."""


def fingerprint(parts: Mapping[str, Any]) -> dict[str, str]:
    """Part name -> sha256 of its canonical JSON (12 hex digits), plus ``"all"`` over every part."""
    def digest(value) -> str:
        return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()[:12]

    out = {name: digest(value) for name, value in sorted(parts.items())}
    out["all"] = digest(out)
    return out


@dataclass(frozen=True)
class JournalState:
    """What the journals of ``out_dir`` hold: the records and saved files of every finished batch."""

    images: frozenset[str]
    records: tuple[ImageRecord, ...]
    perturbations: tuple[PerturbationRecord, ...]
    saved: tuple[SavedFile, ...]
    dropped_lines: int
    numerics: dict | None = None  # the numerics the journal was written under (its header), if recorded


def journal_dir(out_dir: str | os.PathLike[str]) -> Path:
    return Path(out_dir) / JOURNAL_DIR


def read_journals(out_dir: str | os.PathLike[str], expected: Mapping[str, str],
                  ignore: Iterable[str] = ()) -> JournalState:
    """Every rank's journal under ``out_dir`` (empty state if there is none); fingerprint parts named in
    ``ignore`` are not compared (``benchmark finalize`` on another device: ``"numerics"``).

    Raises:
        JournalMismatch: a journal's fingerprint differs from ``expected`` (the message names the part).
        ResultError: a journal line other than the last one is not valid JSON (a damaged file).
    """
    images, records, perturbations, saved, dropped, numerics = set(), [], [], [], 0, None
    for path in sorted(journal_dir(out_dir).glob("rank-*.jsonl")):
        lines, torn = _complete_lines(path)
        dropped += torn
        if not lines:
            continue
        header = _parse(lines[0], path, 1)
        _check_fingerprint(header.get("fingerprint", {}), expected, out_dir, tuple(ignore))
        numerics = header.get("numerics", numerics)
        for number, line in enumerate(lines[1:], start=2):
            batch = _parse(line, path, number)
            images.update(batch["names"])
            records += codec.decode(tuple[ImageRecord, ...], batch["records"], str(path), f"line {number}")
            perturbations += codec.decode(tuple[PerturbationRecord, ...], batch["perturbations"], str(path),
                                          f"line {number}")
            saved += codec.decode(tuple[SavedFile, ...], batch["saved"], str(path), f"line {number}")
    return JournalState(frozenset(images), tuple(records), tuple(perturbations), tuple(saved), dropped, numerics)


class JournalWriter:
    """Appends one rank's finished batches to ``OUT_DIR/journal/rank-<rank>.jsonl``."""

    def __init__(self, out_dir: str | os.PathLike[str], rank: int, parts: Mapping[str, str],
                 numerics: Mapping[str, Any] | None = None):
        self.path = journal_dir(out_dir) / f"rank-{rank}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines, torn = _complete_lines(self.path) if self.path.exists() else ([], 0)
        if torn:  # cut the torn tail so the next line starts on a line of its own
            with open(self.path, "r+b") as handle:
                handle.truncate(sum(len(line) + 1 for line in lines))
        self._handle = open(self.path, "a", encoding="utf-8")
        if not lines:
            header = {"journal_version": JOURNAL_VERSION, "fingerprint": dict(parts)}
            self._write(header if numerics is None else {**header, "numerics": dict(numerics)})

    def append(self, names: Iterable[str], records: Iterable[ImageRecord], perturbations: Iterable[PerturbationRecord],
               saved: Iterable[SavedFile]) -> None:
        self._write({"names": list(names), "records": codec.encode(tuple(records)),
                     "perturbations": codec.encode(tuple(perturbations)), "saved": codec.encode(tuple(saved))})

    def _write(self, value: dict) -> None:
        try:
            self._handle.write(json.dumps(value, separators=(",", ":"), allow_nan=False) + "\n")
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as err:  # name the file (a full disk says only "No space left on device")
            raise OSError(err.errno, err.strerror, str(self.path)) from None

    def close(self) -> None:
        self._handle.close()


def journalled_images(out_dir: str | os.PathLike[str]) -> int:
    """How many images the journals in ``out_dir`` hold (for messages; no fingerprint check)."""
    names = set()
    for path in journal_dir(out_dir).glob("rank-*.jsonl"):
        for line in _complete_lines(path)[0][1:]:
            names.update(json.loads(line).get("names", []))
    return len(names)


def remove_journals(out_dir: str | os.PathLike[str]) -> None:
    """Delete the journal of a run that finished (its results.json now holds everything) or is
    discarded (``--fresh``), with the W&B run id kept beside it."""
    folder = journal_dir(out_dir)
    for path in [*folder.glob("rank-*.jsonl"), folder / "wandb-id"]:
        path.unlink(missing_ok=True)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def _complete_lines(path: Path) -> tuple[list[str], int]:
    """The file's newline-terminated lines that parse as JSON objects, and 1 if a torn last line was dropped."""
    data = path.read_bytes().decode("utf-8", errors="replace")
    lines = data.split("\n")
    tail = lines.pop()  # text after the last newline: empty unless the last write was cut short
    torn = 1 if tail else 0
    if lines:
        try:
            json.loads(lines[-1])
        except ValueError:
            lines.pop()  # cut inside a line that still got its newline? treat as torn as well
            torn = 1
    return lines, torn


def _parse(line: str, path: Path, number: int) -> dict:
    try:
        value = json.loads(line)
    except ValueError:
        raise ResultError(f"{path}: line {number} is damaged (not JSON); start over with --fresh") from None
    if not isinstance(value, dict):
        raise ResultError(f"{path}: line {number} is not a JSON object; start over with --fresh")
    return value


def _check_fingerprint(found: Mapping[str, str], expected: Mapping[str, str], out_dir,
                       ignore: tuple[str, ...] = ()) -> None:
    if found.get("all") == expected.get("all"):
        return
    differing = sorted(name for name in set(found) | set(expected)
                       if name not in ("all", *ignore) and found.get(name) != expected.get(name))
    if ignore and not differing:
        return
    what = ", ".join(differing) or "its format"
    raise JournalMismatch(f"{out_dir} holds an interrupted run of another configuration (its {what} differ); "
                          f"rerun with --fresh to discard it, or choose another --results.out_dir")
