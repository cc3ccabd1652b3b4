"""The model zoo: every named model as data, read from ``configs/models/*.yaml``.

Each YAML file maps a zoo name to one entry::

    pspnet-r50-voc:
      config: pspnet/pspnet_r50-d8_4xb4-20k_voc12aug-512x512.py   # mmseg config name or repo path
      dataset: voc2012
      checkpoint: checkpoints/pspnet_r50-....pth                   # local path, relative to the repo
      url: https://...                                             # optional: where fetch-checkpoint gets it
      sha256: null                                                 # full digest, or null if not recorded
      published_miou: 0.7678                                       # fraction; null if unknown
      crop_size: [512, 512]                                        # training crop (h, w), from the config name
      mode: null                                                   # optional: "whole" | "slide" override
      clean_miou: null                                             # optional: measured on the embedded default

``MODEL_ZOO`` is read-only; a name defined twice (in one file or across files) is an error. Users add
their own models by pointing ``BENCHMARK_MODEL_ZOO`` at further folders of such YAML files
(``os.pathsep``-separated); their ``config`` and ``checkpoint`` paths may be absolute.

Downloaded checkpoints (entries with a ``url`` and a relative ``checkpoint``) live under the repository's
``checkpoints/`` unless ``BENCHMARK_CHECKPOINT_DIR`` names another folder (a cluster's shared weights):
then ``fetch-checkpoint`` stores them there and every run reads them from there, by file name.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import yaml

from benchmark.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
ZOO_DIR = REPO_ROOT / "configs" / "models"
_HEX = re.compile(r"^[0-9a-f]{64}$")
_URL_PREFIX = re.compile(r"-([0-9a-f]{8})\.pth$")


@dataclass(frozen=True)
class ModelEntry:
    """One zoo model.

    Args:
        name: zoo name (the YAML key).
        config: mmseg config: a name inside mmseg's shipped configs, or a path relative to the repo.
        dataset: dataset registry name the checkpoint was trained on (defines the classes).
        checkpoint: local checkpoint path, relative to the repository root.
        url: download address for ``benchmark fetch-checkpoint`` (None for committed checkpoints).
        sha256: full hex digest of the checkpoint file, or None when not recorded.
        published_miou: mIoU reported by the checkpoint's authors, as a fraction.
        crop_size: (height, width) of the training crop, for official entries (mmseg's metafile name).
        clean_miou: clean mIoU we measured on the dataset's val split (embedded default models).
        mode: inference mode override ("whole" | "slide"); None keeps the config's test_cfg.
    """

    name: str
    config: str
    dataset: str
    checkpoint: str
    url: str | None = None
    sha256: str | None = None
    published_miou: float | None = None
    clean_miou: float | None = None
    mode: str | None = None
    crop_size: tuple[int, int] | None = None

    def __post_init__(self):
        if self.crop_size is not None:
            if len(self.crop_size) != 2 or not all(isinstance(v, int) and v > 0 for v in self.crop_size):
                raise ConfigError(f"model zoo entry {self.name!r}: crop_size must be [height, width], "
                                  f"got {self.crop_size!r}")
            object.__setattr__(self, "crop_size", tuple(self.crop_size))
        if self.sha256 is not None and not _HEX.match(self.sha256):
            raise ConfigError(f"model zoo entry {self.name!r}: sha256 must be 64 lowercase hex digits")
        if self.mode not in (None, "whole", "slide"):
            raise ConfigError(f"model zoo entry {self.name!r}: mode must be whole or slide, got {self.mode!r}")

    @property
    def checkpoint_path(self) -> Path:
        """The local file: ``$BENCHMARK_CHECKPOINT_DIR/<file name>`` for a downloaded (``url``) entry with a
        relative path when that variable is set, else the path as written (relative to the repository)."""
        folder = os.environ.get("BENCHMARK_CHECKPOINT_DIR")
        if folder and self.url and not Path(self.checkpoint).is_absolute():
            return Path(folder) / Path(self.checkpoint).name
        return REPO_ROOT / self.checkpoint

    @property
    def config_path(self) -> str:
        """The config as build_segmentor takes it: a repo file if one exists, else an mmseg name."""
        local = REPO_ROOT / self.config
        return str(local) if local.is_file() else self.config

    @property
    def sha256_prefix(self) -> str | None:
        """The 8-hex sha256 prefix that mmseg puts in its checkpoint file names, if any."""
        match = _URL_PREFIX.search(self.url or "")
        return match.group(1) if match else None


_FIELDS = {f.name for f in fields(ModelEntry)} - {"name"}


def zoo_dirs() -> list[Path]:
    """The shipped zoo folder plus the folders named in ``BENCHMARK_MODEL_ZOO``."""
    extra = [Path(p) for p in os.environ.get("BENCHMARK_MODEL_ZOO", "").split(os.pathsep) if p]
    return [ZOO_DIR, *extra]


def load_zoo(*directories: Path) -> Mapping[str, ModelEntry]:
    """Read every ``*.yaml`` in ``directories`` (default: :func:`zoo_dirs`) into a read-only mapping."""
    entries: dict[str, ModelEntry] = {}
    paths = [path for directory in (directories or zoo_dirs()) for path in sorted(Path(directory).glob("*.yaml"))]
    for path in paths:
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of model names to entries")
        for name, body in data.items():
            if name in entries:
                raise ConfigError(f"{path}: model {name!r} is already defined in the zoo")
            if not isinstance(body, dict):
                raise ConfigError(f"{path}: entry {name!r} must be a mapping")
            unknown = sorted(set(body) - _FIELDS)
            if unknown:
                raise ConfigError(f"{path}: entry {name!r} has unknown key {unknown[0]!r}")
            try:
                entries[name] = ModelEntry(name=name, **body)
            except TypeError as err:
                raise ConfigError(f"{path}: entry {name!r}: {err}") from None
    return MappingProxyType(entries)


@cache
def _zoo() -> Mapping[str, ModelEntry]:
    return load_zoo()


def get_model_entry(name: str) -> ModelEntry:
    """The zoo entry called ``name``; ConfigError naming the valid names otherwise."""
    zoo = _zoo()
    if name not in zoo:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(sorted(zoo))}")
    return zoo[name]


def __getattr__(name: str):
    # MODEL_ZOO is read lazily so that importing this module does no file I/O.
    if name == "MODEL_ZOO":
        return _zoo()
    raise AttributeError(name)
