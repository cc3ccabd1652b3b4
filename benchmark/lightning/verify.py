"""``benchmark verify ENTRY``: re-run a leaderboard entry on its first K images and compare.

1. The entry must match its file name's content hash and its metrics must follow exactly from its
   per-image records (:func:`benchmark.results.audit.check_consistency`): an edited number is caught
   without running anything.
2. Every model's local checkpoint must have the sha256 the entry records; otherwise verification is
   refused (different weights give different numbers).
3. The entry's dataset, models, attack (every recorded setting) and seed are run again on the first K
   images, with the run's recorded batch size, and the per-image pixel counts are compared with the
   recorded ones. ``tolerance`` is the largest allowed count difference as a fraction of an image's
   valid pixels. By default it is 0 -- identical counts -- when the re-run's numerics (device and its
   model, threads, precision settings) and versions equal the entry's, which a CPU re-run then gives
   if its batches hold the same images as the original ones (K a multiple of the batch size); when they
   differ it is 0.01, which absorbs the last-bit differences at near-tied pixels, and the report says
   what differed.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchmark.errors import CheckpointError, ResultError
from benchmark.fileio import sha256_file
from benchmark.models.zoo import get_model_entry
from benchmark.results import CLEAN, read_result
from benchmark.results.audit import check_consistency, compare_images
from benchmark.results.entry import read_named_entry

#: Where ``verify`` looks for each dataset unless ``data_root`` is given (the shipped configs' roots).
DEFAULT_ROOTS = {
    "synthetic-voc": "data/generated/synthetic-voc",
    "synthetic-cityscapes": "data/generated/synthetic-cityscapes",
    "voc2012": "data/VOCdevkit/VOC2012",
    "cityscapes": "data/cityscapes",
    "ade20k": "data/ade/ADEChallengeData2016",
}


DEFAULT_TOLERANCE = 0.01


@dataclass(frozen=True)
class Verification:
    """``problems`` of the re-run of ``images`` images, compared with ``tolerance`` (fraction of an
    image's valid pixels); ``numerics`` says whether the re-run's numerics and versions matched the
    entry's (the condition for bit-identical counts) and, if not, what differed."""

    entry: str
    images: int
    problems: tuple[str, ...]
    tolerance: float
    numerics: str

    @property
    def ok(self) -> bool:
        return not self.problems


def check_entry_file(path: Path):
    """Read an entry, refusing one whose content no longer matches its name or its own records."""
    entry = read_named_entry(path)
    check_consistency(entry, str(path))
    return entry


def check_checkpoints(entry) -> None:
    """Refuse a local model whose checkpoint (or a factory model's source files) differs from the entry's."""
    for model in entry.models:
        zoo_entry = get_model_entry(model.name)
        recorded = model.origin  # a factory model's provenance
        if zoo_entry.factory is not None and recorded is not None:
            from benchmark.plugins import check_origin

            check_origin(recorded.to_dict(), zoo_entry.load_factory()[1], f"model {model.name!r}: factory")
        local = zoo_entry.checkpoint_path
        if local is None and model.checkpoint_sha256 is None:
            continue  # a factory model with its own weights: its code is its provenance
        if local is None or not local.is_file():
            raise CheckpointError(f"cannot verify: checkpoint of {model.name!r} not found at {local}")
        digest = sha256_file(local)
        if digest != model.checkpoint_sha256:
            raise CheckpointError(f"refusing to verify: {local} has sha256 {digest}, the entry records "
                                  f"{model.checkpoint_sha256}")


def check_plugins(entry) -> None:
    """Load the plugin an entry's attack was made with, refusing (one line naming the file) a local copy
    whose sources differ from the recorded ones; an attack of unknown parts without a record is refused."""
    from benchmark.attacks.registry import ATTACKS, MODIFIERS
    from benchmark.plugins import check_origin, import_spec, load_attack_plugins

    recorded = entry.attack.origin
    if recorded is not None:
        check_origin(recorded.to_dict(), import_spec(recorded.import_), "attack plugin")
        load_attack_plugins([recorded.import_])
    name = entry.attack.settings.get("attack", entry.attack.name)
    unknown = [part for part in name.split("+") if part not in ATTACKS and part not in MODIFIERS]
    if unknown:
        raise ResultError(f"cannot verify: attack {name!r} uses {unknown[0]!r}, which is neither built in nor "
                          "recorded as a plugin")


def rerun_arguments(entry, images: int, data_root: str, out_dir: Path, batch_size: int) -> list[str]:
    """``benchmark run`` arguments that repeat ``entry`` on its first ``images`` images."""
    from benchmark.attacks.settings import build_options

    settings = dict(entry.attack.settings)  # its code revision is the running code's, not an option
    attack = {"name": settings.get("attack", entry.attack.name), "label": entry.attack.name,
              **build_options(settings)}
    sources = list(entry.source.models)
    targets = [m.name for m in entry.models if "target" in m.roles]
    return [
        "--data.dataset", entry.dataset.name, "--data.root", data_root, "--data.split", entry.dataset.split,
        "--data.limit", str(images), "--data.batch_size", str(batch_size),
        "--model.source", json.dumps(sources), "--model.targets", json.dumps(targets),
        "--attack.attacks", json.dumps([attack]), "--attack.eps", repr(settings["eps"]),
        "--attack.steps", "null", "--attack.alpha", "null", "--attack.seeds", json.dumps(list(entry.seeds)),
        "--attack.ensemble", str(settings.get("ensemble", "logits")),
        "--results.out_dir", str(out_dir), "--results.quiet", "true", "--logger", "none",
        "--progress.refresh_rate", "0",
        *(["--attack.plugins", json.dumps([entry.attack.origin.import_])] if entry.attack.origin else []),
    ]


def numerics_difference(entry, rerun) -> str | None:
    """What differs between the entry's and the re-run's numerics or versions (None: nothing)."""
    if entry.numerics is None:
        return "the entry does not record its numerics"
    differing = [f"{name} {a!r} vs {b!r}" for name, a, b in
                 [(k, v, getattr(rerun.numerics, k)) for k, v in vars(entry.numerics).items()]
                 + [(f"{k} version", v, getattr(rerun.versions, k)) for k, v in vars(entry.versions).items()]
                 if a != b]
    return ", ".join(differing) or None


def verify(path: str | Path, images: int = 8, data_root: str | None = None, tolerance: float | None = None,
           batch_size: int | None = None) -> Verification:
    """Verify the entry at ``path`` on its first ``images`` images (see the module docstring).

    ``tolerance`` None: exact (0) when the re-run's numerics and versions equal the entry's, else
    :data:`DEFAULT_TOLERANCE`; an explicit value is used as given."""
    from benchmark.lightning.cli import run_cli

    path = Path(path)
    entry = check_entry_file(path)
    check_checkpoints(entry)
    check_plugins(entry)
    images = min(images, entry.dataset.num_images)
    root = data_root or DEFAULT_ROOTS.get(entry.dataset.name)
    if root is None:
        raise ResultError(f"no default data root for dataset {entry.dataset.name!r}; pass --data-root")
    lightning_log = logging.getLogger("lightning.pytorch")
    level = lightning_log.level
    lightning_log.setLevel(logging.WARNING)  # the re-run's device banners are noise here
    try:
        with tempfile.TemporaryDirectory(prefix="verify-") as tmp:
            status = run_cli(rerun_arguments(entry, images, root, Path(tmp), batch_size or entry.dataset.batch_size))
            if status == 0:
                rerun = read_result(Path(tmp) / "results.json")
    finally:
        lightning_log.setLevel(level)
    if status != 0:
        raise ResultError(f"the re-run of {path} failed (exit status {status})")
    fresh = [r for r in rerun.images if r.condition in (CLEAN, entry.attack.name)]
    difference = numerics_difference(entry, rerun)
    if tolerance is None:
        tolerance = 0.0 if difference is None else DEFAULT_TOLERANCE
    numerics = "same numerics and versions" if difference is None else f"numerics differ: {difference}"
    return Verification(str(path), images, tuple(compare_images(entry.images, fresh, tolerance)), tolerance, numerics)
