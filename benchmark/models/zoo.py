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

A model that is not an mmseg config gives, instead of ``config``, a ``factory``: a Python function that
returns an ``nn.Module`` mapping float RGB images in [0, 1], shape (N, 3, H, W), to logits
(N, num_classes, H, W) at input size (normalisation and upsampling inside; ``docs/models.md``)::

    my-unet-voc:
      factory: my_pkg.models:build_unet      # or path/to/file.py:build (relative to the working directory)
      kwargs: {width: 32}                    # optional: keyword arguments of the factory
      num_classes: 21                        # required with factory
      class_names: [background, ...]         # optional: num_classes names (default class_0, class_1, ...)
      dataset: voc2012
      checkpoint: /weights/unet.pth          # optional: null = the factory returns trained weights itself
      sha256: null

``config`` and ``factory`` are exclusive; a factory model infers whole images (``mode`` is whole or
null). Its checkpoint, if any, is a state dict of the module the factory returns and is read by the
same restricted loader as mmseg checkpoints (sha256 and non-finite checks included). The factory is
imported when a run (or any command) first names the model; it is called when the model is built,
and its output shape is checked then on a small probe image. Results record the factory spec as the
model's ``config`` and the sha256 of its source files as its ``origin`` (:func:`benchmark.plugins.origin`).

``MODEL_ZOO`` is read-only; a name defined twice (in one file or across files) is an error. Users add
their own models by pointing ``BENCHMARK_MODEL_ZOO`` at further folders of such YAML files
(``os.pathsep``-separated); their ``config`` and ``checkpoint`` paths may be absolute. Every mistake in an
entry is a one-line ConfigError naming the YAML file and the entry.

Downloaded checkpoints (entries with a ``url`` and a relative ``checkpoint``) live under the repository's
``checkpoints/`` unless ``BENCHMARK_CHECKPOINT_DIR`` names another folder (a cluster's shared weights):
then ``fetch-checkpoint`` stores them there and every run reads them from there, by file name.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any, Mapping

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
        checkpoint: local checkpoint path, relative to the repository root (or absolute); required with
            ``config``, optional with ``factory``.
        url: download address for ``benchmark fetch-checkpoint`` (None for committed checkpoints).
        sha256: full hex digest of the checkpoint file, or None when not recorded.
        published_miou: mIoU reported by the checkpoint's authors, as a fraction.
        crop_size: (height, width) of the training crop, for official entries (mmseg's metafile name).
        clean_miou: clean mIoU we measured on the dataset's val split (embedded default models).
        mode: inference mode override ("whole" | "slide"); None keeps the config's test_cfg.
        factory: instead of ``config``: ``module.name:function`` or ``path/to/file.py:function`` returning
            the ``nn.Module`` (see the module docstring).
        kwargs: keyword arguments of the factory.
        num_classes: the factory model's class count (required with ``factory``).
        class_names: the factory model's ``num_classes`` class names (default ``class_0``, ...).
        zoo_file: the YAML file the entry was read from (for messages; not a YAML key).
    """

    name: str
    config: str | None = None
    dataset: str | None = None
    checkpoint: str | None = None
    url: str | None = None
    sha256: str | None = None
    published_miou: float | None = None
    clean_miou: float | None = None
    mode: str | None = None
    crop_size: tuple[int, int] | None = None
    factory: str | None = None
    kwargs: dict[str, Any] | None = field(default=None, hash=False)
    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    zoo_file: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.crop_size is not None:
            if len(self.crop_size) != 2 or not all(isinstance(v, int) and v > 0 for v in self.crop_size):
                self._fail(f"crop_size must be [height, width], got {self.crop_size!r}")
            object.__setattr__(self, "crop_size", tuple(self.crop_size))
        if self.sha256 is not None and not (isinstance(self.sha256, str) and _HEX.match(self.sha256)):
            self._fail("sha256 must be 64 lowercase hex digits")
        if self.mode not in (None, "whole", "slide"):
            self._fail(f"mode must be whole or slide, got {self.mode!r}")
        if (self.config is None) == (self.factory is None):
            self._fail("give config (an mmseg config) or factory ('module:function' returning an nn.Module), "
                       + ("not both" if self.config is not None else "one of them is required"))
        if not isinstance(self.dataset, str) or not self.dataset:
            self._fail(f"dataset must name the dataset the model was trained on, got {self.dataset!r}")
        if self.checkpoint is not None and not isinstance(self.checkpoint, str):
            self._fail(f"checkpoint must be a path or null, got {self.checkpoint!r}")
        if self.config is not None:
            given = [key for key in ("kwargs", "num_classes", "class_names") if getattr(self, key) is not None]
            if given:
                self._fail(f"{given[0]} belongs to a factory entry (an mmseg config defines its own)")
            if self.checkpoint is None:
                self._fail("checkpoint is required with config")
            return
        self._check_factory()

    def _check_factory(self) -> None:
        problem = _spec_problem(self.factory)
        if problem:
            self._fail(f"factory {self.factory!r}: {problem}")
        if self.mode == "slide":
            self._fail("mode slide is for mmseg configs; a factory model infers whole images")
        if self.checkpoint is None and (self.url or self.sha256):
            self._fail(f"{'url' if self.url else 'sha256'} needs a checkpoint (the file it describes)")
        if self.kwargs is not None and (not isinstance(self.kwargs, dict) or not all(isinstance(k, str)
                                                                                     for k in self.kwargs)):
            self._fail(f"kwargs must be a mapping of argument names to values, got {self.kwargs!r}")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 1:
            self._fail(f"num_classes (a positive integer) is required with factory, got {self.num_classes!r}")
        if self.class_names is not None:
            names = self.class_names
            if isinstance(names, str) or not isinstance(names, (list, tuple)) or \
                    not all(isinstance(n, str) for n in names) or len(names) != self.num_classes:
                self._fail(f"class_names must be a list of num_classes={self.num_classes} strings, got "
                           f"{len(names) if isinstance(names, (list, tuple)) else repr(names)}"
                           f"{' names' if isinstance(names, (list, tuple)) else ''}")
            object.__setattr__(self, "class_names", tuple(names))

    @property
    def where(self) -> str:
        """``configs/models/x.yaml: entry 'name'`` (``model zoo entry 'name'`` for an entry made in code)."""
        return f"{self.zoo_file}: entry {self.name!r}" if self.zoo_file else f"model zoo entry {self.name!r}"

    def _fail(self, problem: str):
        raise ConfigError(f"{self.where}: {problem}")

    @property
    def recorded_config(self) -> str:
        """What results record as the model's ``config``: the mmseg config, or the factory spec."""
        return self.config if self.config is not None else self.factory

    def load_factory(self) -> tuple[Any, ModuleType]:
        """(the factory, its module), imported once per process (:func:`benchmark.plugins.load_object`);
        a ConfigError naming the YAML file and the entry if it cannot be imported or is not callable."""
        from benchmark.plugins import load_object

        try:
            factory, module = load_object(self.factory, what="factory")
        except ConfigError as err:
            self._fail(str(err))
        if not callable(factory):
            self._fail(f"factory {self.factory!r} is a {type(factory).__name__}, not a function")
        return factory, module

    @property
    def checkpoint_path(self) -> Path | None:
        """The local file: ``$BENCHMARK_CHECKPOINT_DIR/<file name>`` for a downloaded (``url``) entry with a
        relative path when that variable is set, else the path as written (relative to the repository);
        None for a factory entry without a checkpoint."""
        if self.checkpoint is None:
            return None
        folder = os.environ.get("BENCHMARK_CHECKPOINT_DIR")
        if folder and self.url and not Path(self.checkpoint).is_absolute():
            return Path(folder) / Path(self.checkpoint).name
        return REPO_ROOT / self.checkpoint

    @property
    def config_path(self) -> str | None:
        """The config as build_segmentor takes it: a repo file if one exists, else an mmseg name (None
        for a factory entry)."""
        if self.config is None:
            return None
        local = REPO_ROOT / self.config
        return str(local) if local.is_file() else self.config

    @property
    def sha256_prefix(self) -> str | None:
        """The 8-hex sha256 prefix that mmseg puts in its checkpoint file names, if any."""
        match = _URL_PREFIX.search(self.url or "")
        return match.group(1) if match else None


def _spec_problem(spec) -> str | None:
    """What is wrong with the form of a factory spec (nothing is imported), or None."""
    if not isinstance(spec, str):
        return "must be a string"
    module, _, attribute = spec.rpartition(":")
    if not module or not attribute.isidentifier():
        return "must be 'module.name:function' or 'path/to/file.py:function'"
    from benchmark.plugins import is_path_spec

    if not is_path_spec(module) and not all(part.isidentifier() for part in module.split(".")):
        return f"{module!r} is neither a dotted module name nor a path to a .py file"
    return None


_FIELDS = {f.name for f in fields(ModelEntry)} - {"name", "zoo_file"}


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
                entries[name] = ModelEntry(name=name, **body, zoo_file=str(path))
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
    entry = zoo[name]
    if entry.factory is not None:
        entry.load_factory()  # a factory that cannot be imported fails here, before any work
    return entry


def __getattr__(name: str):
    # MODEL_ZOO is read lazily so that importing this module does no file I/O.
    if name == "MODEL_ZOO":
        return _zoo()
    raise AttributeError(name)
