"""The manifest of a saved adversarial set (``results.save_adv``): what ``benchmark evaluate`` trusts.

``OUT_DIR/adv/manifest.json`` lists every PNG of the set with its sha256, the dataset and the image
names in order, the source models (config, checkpoint sha256), every attack's full settings and hash,
the seeds and each attack's budget in integer levels (``e = floor(255 eps + 1e-6)``), and the sha256 of
the attacking run's ``results.json``. The budgets are a copy for readers: the budget of an attack is always
derived from the eps of its settings (which its settings hash protects), and a manifest whose ``budgets``
differ from that is refused (pitfalls §23). :func:`check_files` refuses a set whose files are missing, extra
or altered; :func:`check_budget` one whose adversarial images leave the budget around their clean image.
Layout: ``clean/<image>.png`` and ``<source>/<attack>/seed<k>/<image>.png``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.errors import ResultError
from benchmark.results import codec
from benchmark.results.io import load_json, write_json_atomic
from benchmark.results.schema import CLEAN, AttackInfo, DatasetInfo, ModelInfo, SourceInfo

MANIFEST_VERSION = 1
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class SavedFile:
    """One PNG of the set: ``path`` relative to the set's folder, its ``sha256``."""

    path: str
    sha256: str


@dataclass(frozen=True)
class AttackBudget:
    """An attack's L-inf budget in 8-bit levels: adversarial and clean files differ by at most ``levels``."""

    attack: str
    levels: int


@dataclass(frozen=True)
class AdvManifest:
    """A saved adversarial set (see the module docstring)."""

    manifest_version: int
    dataset: DatasetInfo
    images: tuple[str, ...]
    sources: tuple[SourceInfo, ...]
    models: tuple[ModelInfo, ...]
    attacks: tuple[AttackInfo, ...]
    seeds: tuple[int, ...]
    budgets: tuple[AttackBudget, ...]
    result_sha256: str
    files: tuple[SavedFile, ...]

    def __post_init__(self) -> None:
        if self.manifest_version != MANIFEST_VERSION:
            raise ResultError(f"adversarial-set manifest version {self.manifest_version} is not {MANIFEST_VERSION}")
        expected = {condition_path(c, image) for c in self.conditions() for image in self.images}
        listed = [f.path for f in self.files]
        if set(listed) != expected or len(listed) != len(expected):
            raise ResultError("manifest: files must be exactly one PNG per image and condition")
        if sorted(b.attack for b in self.budgets) != sorted(a.name for a in self.attacks):
            raise ResultError("manifest: one budget per attack")
        for entry in self.budgets:  # derived again, never trusted (pitfalls §23): settings_hash covers eps
            eps = attack_eps(next(a for a in self.attacks if a.name == entry.attack))
            if entry.levels != budget_levels(eps):
                raise ResultError(f"budgets gives {entry.attack} {entry.levels} levels but its settings (eps "
                                  f"{eps:.4f} = {round(255 * eps, 4):g}/255) allow {budget_levels(eps)}; "
                                  "the manifest was edited")

    def conditions(self) -> list:
        """"clean" and every (source id, attack, seed) of the set."""
        return [CLEAN, *((s.id, a.name, seed) for s in self.sources for a in self.attacks for seed in self.seeds)]

    def budget(self, attack: str) -> int:
        """The budget of ``attack`` in levels, derived from its settings' eps (``budgets`` only agrees with it)."""
        return budget_levels(attack_eps(next(a for a in self.attacks if a.name == attack)))


def attack_eps(attack: AttackInfo) -> float:
    """``eps`` of the attack's flat settings; ResultError if it has none (a saved set needs a budget)."""
    eps = attack.settings.get("eps")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps <= 1:
        raise ResultError(f"attack {attack.name}: its settings hold no eps in (0, 1] (got {eps!r}), so its saved "
                          "files have no budget to check")
    return float(eps)


def budget_levels(eps: float) -> int:
    """The integer budget of files: ``floor(255 eps + 1e-6)`` levels (pitfalls §15)."""
    return math.floor(255 * eps + 1e-6)


def condition_path(condition, image: str) -> str:
    """``clean/<image>.png`` or ``<source>/<attack>/seed<k>/<image>.png``."""
    if condition == CLEAN:
        return f"{CLEAN}/{image}.png"
    source, attack, seed = condition
    return f"{source}/{attack}/seed{seed}/{image}.png"


def write_manifest(folder: str | os.PathLike[str], manifest: AdvManifest) -> Path:
    path = Path(folder) / MANIFEST
    write_json_atomic(path, codec.encode(manifest))
    return path


def read_manifest(folder: str | os.PathLike[str]) -> AdvManifest:
    """The manifest of the set in ``folder`` (ResultError naming the file on any problem)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ResultError(f"{folder} is not a saved adversarial set: no {MANIFEST} (run with results.save_adv true)")
    raw = load_json(path)
    if raw.get("manifest_version") != MANIFEST_VERSION:
        raise ResultError(f"{path}: manifest_version must be {MANIFEST_VERSION}, got {raw.get('manifest_version')!r}")
    return codec.decode(AdvManifest, raw, str(path))


def check_files(folder: str | os.PathLike[str], manifest: AdvManifest) -> None:
    """Every listed file exists with its sha256, and no other PNG is in the set."""
    from benchmark.fileio import sha256_file

    folder = Path(folder)
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*.png")}
    listed = {f.path for f in manifest.files}
    if present - listed:
        raise ResultError(f"{folder}: {len(present - listed)} PNG files are not in the manifest, e.g. "
                          f"{sorted(present - listed)[0]}")
    for saved in manifest.files:
        path = folder / saved.path
        if not path.is_file():
            raise ResultError(f"{folder}: {saved.path} is listed in the manifest but missing")
        if sha256_file(path) != saved.sha256:
            raise ResultError(f"{folder}: {saved.path} does not match its sha256 in the manifest (altered?)")


def read_png(path: str | os.PathLike[str]) -> np.ndarray:
    """An RGB PNG as a uint8 (H, W, 3) array."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def check_budget(folder: str | os.PathLike[str], manifest: AdvManifest) -> None:
    """Every adversarial file is within its attack's budget (in levels) of the clean file, same size."""
    folder = Path(folder)
    for image in manifest.images:
        clean = read_png(folder / condition_path(CLEAN, image)).astype(np.int16)
        for condition in manifest.conditions()[1:]:
            adv = read_png(folder / condition_path(condition, image)).astype(np.int16)
            if adv.shape != clean.shape:
                raise ResultError(f"{folder}: {condition_path(condition, image)} is {adv.shape[1]}x{adv.shape[0]}, "
                                  f"its clean image {clean.shape[1]}x{clean.shape[0]}")
            gap, levels = int(np.abs(adv - clean).max()), manifest.budget(condition[1])
            if gap > levels:
                raise ResultError(f"{folder}: {condition_path(condition, image)} differs from its clean image by "
                                  f"{gap} levels, over the budget of {levels} (eps {levels}/255)")
