"""The descriptive parts of a result (:mod:`benchmark.results.schema`): what was evaluated (dataset, shard,
models, sources, attacks), with what (versions, numerics, provenance, the origin of users' code) and how
long it took. Each is a frozen dataclass that checks itself in ``__post_init__`` and raises ``ResultError``
with a one-line message naming the field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from benchmark.errors import ResultError
from benchmark.results.codec import JSON_KEY, OMIT_DEFAULT
from benchmark.results.tracks import TrackInfo, settings_hash, track_from_settings

CLEAN = "clean"  # the condition name of unattacked images
ROLES = ("source", "target")
INFERENCE_MODES = ("whole", "slide")
ENSEMBLE_MODES = ("logits", "loss")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
#: the origin label of an entry that used no users' code (see :attr:`Origin.label`)
BUILT_IN = "built-in"


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ResultError(message)


def _fraction(value: float | None, name: str) -> None:
    _check(value is None or (math.isfinite(value) and 0.0 <= value <= 1.0),
           f"{name} must be a fraction in [0, 1] (not a percentage), got {value!r}")


@dataclass(frozen=True)
class ShardInfo:
    """A job-array shard: shard ``index`` of ``count`` of a job of ``job_images`` images, holding the
    images at positions ``index, index + count, ...`` of the job's image list (the DDP rank rule)."""

    index: int
    count: int
    job_images: int

    def __post_init__(self) -> None:
        _check(0 <= self.index < self.count, f"shard index {self.index} must be in [0, count={self.count})")
        _check(self.job_images >= 1, f"shard job_images must be >= 1, got {self.job_images}")

    @property
    def text(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def num_images(self) -> int:
        """Images this shard must hold: the positions index, index + count, ... below job_images."""
        return len(range(self.index, self.job_images, self.count))


@dataclass(frozen=True)
class DatasetInfo:
    """The evaluated data. ``num_images`` were evaluated out of ``split_size`` in the full split;
    ``image_limit`` is the run's cap on images (None: whole split). ``input_policy`` describes resizing
    and cropping (pitfalls §13); ``class_names`` fixes the order of per-class IoU. ``batch_size`` is
    the images per batch of the run: results do not depend on it beyond last-bit floating-point
    differences at near-tied pixels, and ``benchmark verify`` reuses it to repeat a run exactly.
    ``shard`` marks one shard of a job array (None otherwise; left out of files that are not shards):
    such a result is partial until ``benchmark summarize`` joins all shards of the job."""

    name: str
    split: str
    num_images: int
    split_size: int
    image_limit: int | None
    input_policy: str
    class_names: tuple[str, ...]
    ignore_index: int
    batch_size: int
    shard: ShardInfo | None = field(default=None, metadata={OMIT_DEFAULT: True})

    def __post_init__(self) -> None:
        _check(self.batch_size >= 1, f"dataset.batch_size must be >= 1, got {self.batch_size}")
        if self.shard is not None:
            shard = self.shard
            _check(shard.num_images == self.num_images, f"dataset.shard {shard.text}: a shard of a job of "
                   f"{shard.job_images} images holds {shard.num_images} images, not {self.num_images}")
        _check(0 <= self.num_images <= self.split_size,
               f"dataset.num_images {self.num_images} must be in [0, split_size={self.split_size}]")
        _check(self.image_limit is None or self.image_limit >= 1,
               f"dataset.image_limit must be null or >= 1, got {self.image_limit}")
        _check(len(self.class_names) >= 1, "dataset.class_names is empty")

    @property
    def is_partial(self) -> bool:
        """True when fewer images than the full split were evaluated, or the run is one shard of a job
        (not comparable)."""
        return self.num_images != self.split_size or self.shard is not None


@dataclass(frozen=True)
class Origin:
    """Where users' code came from: a plugin attack or a model built by a user's factory (the record of
    :func:`benchmark.plugins.origin`). ``import_`` (JSON key ``"import"``) is the spec it was imported by
    (``my_pkg.mod`` or ``path/to/file.py``); ``distribution`` and ``version`` name the installed pip
    distribution (None for a file or an uninstalled module); ``sha256`` maps each source file (relative
    POSIX path) to its digest, so a copy elsewhere can be checked (:func:`benchmark.plugins.check_origin`)."""

    import_: str = field(metadata={JSON_KEY: "import"})
    distribution: str | None
    version: str | None
    sha256: dict[str, str]

    def __post_init__(self) -> None:
        _check(isinstance(self.import_, str) and bool(self.import_.strip()),
               f"origin.import must be a non-empty string, got {self.import_!r}")
        where = f"origin '{self.import_}'"
        for name in ("distribution", "version"):
            value = getattr(self, name)
            _check(value is None or isinstance(value, str), f"{where}: {name} must be a string or null, got {value!r}")
        _check(isinstance(self.sha256, Mapping) and len(self.sha256) >= 1,
               f"{where}: sha256 must map at least one source file to its digest, got {self.sha256!r}")
        for path, digest in self.sha256.items():
            _check(isinstance(path, str) and bool(path), f"{where}: sha256 names an empty or non-string file {path!r}")
            _check(isinstance(digest, str) and bool(SHA256_RE.match(digest)),
                   f"{where}: sha256[{path!r}] must be 64 lowercase hex characters, got {digest!r}")
        object.__setattr__(self, "sha256", dict(sorted(self.sha256.items())))  # own, ordered copy

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Origin:
        """From the plain mapping of :func:`benchmark.plugins.origin` (keys import, distribution,
        version, sha256; every one required, no other)."""
        _check(isinstance(record, Mapping), f"origin must be a mapping, got {type(record).__name__}")
        keys = ("import", "distribution", "version", "sha256")
        missing = [k for k in keys if k not in record]
        _check(not missing, f"origin: missing key '{missing[0] if missing else ''}'")
        unknown = sorted(str(k) for k in record if k not in keys)
        _check(not unknown, f"origin: unknown key '{unknown[0] if unknown else ''}'")
        return cls(import_=record["import"], distribution=record["distribution"], version=record["version"],
                   sha256=record["sha256"])

    @classmethod
    def coerce(cls, value: Origin | Mapping[str, Any] | None) -> Origin | None:
        """``value`` as an Origin: an Origin or None as it is, a plain mapping via :meth:`from_dict`."""
        if value is None or isinstance(value, Origin):
            return value
        return cls.from_dict(value)

    def to_dict(self) -> dict[str, Any]:
        """The plain mapping (as :func:`benchmark.plugins.origin` gives it, and ``check_origin`` takes)."""
        return {"import": self.import_, "distribution": self.distribution, "version": self.version,
                "sha256": dict(self.sha256)}

    @property
    def label(self) -> str:
        """``my_pkg.attacks 0.1.0``, or the import spec alone without a version (shown on the leaderboard)."""
        return self.import_ if self.version is None else f"{self.import_} {self.version}"


@dataclass(frozen=True)
class ModelInfo:
    """One model: zoo ``name``, ``roles`` (subset of ("source", "target"), in that order), mmseg
    ``config`` path or name, ``checkpoint_sha256`` (64 lowercase hex; None without a checkpoint) and
    ``inference_mode`` ("whole" or "slide"). ``origin``: the user's factory that built it (None for a
    model of this package; left out of files then; a plain mapping is read by :meth:`Origin.from_dict`)."""

    name: str
    roles: tuple[str, ...]
    config: str
    checkpoint_sha256: str | None
    inference_mode: str
    origin: Origin | None = field(default=None, metadata={OMIT_DEFAULT: True})

    def __post_init__(self) -> None:
        object.__setattr__(self, "origin", Origin.coerce(self.origin))
        _check(bool(self.roles) and self.roles == tuple(r for r in ROLES if r in self.roles)
               and len(set(self.roles)) == len(self.roles),
               f"model '{self.name}': roles must be a non-empty subset of {list(ROLES)} in that order, "
               f"got {list(self.roles)}")
        _check(self.inference_mode in INFERENCE_MODES,
               f"model '{self.name}': inference_mode must be one of {list(INFERENCE_MODES)}, "
               f"got '{self.inference_mode}'")
        _check(self.checkpoint_sha256 is None or bool(SHA256_RE.match(self.checkpoint_sha256)),
               f"model '{self.name}': checkpoint_sha256 must be 64 lowercase hex characters")


@dataclass(frozen=True)
class SourceInfo:
    """The model(s) the attacks differentiate: one name, or several with ``ensemble`` "logits"/"loss"."""

    models: tuple[str, ...]
    ensemble: str | None

    def __post_init__(self) -> None:
        _check(len(self.models) >= 1, "source.models is empty")
        _check((len(self.models) == 1) == (self.ensemble is None) and
               (self.ensemble is None or self.ensemble in ENSEMBLE_MODES),
               f"source.ensemble must be null for one model and one of {list(ENSEMBLE_MODES)} for "
               f"several, got {self.ensemble!r} with {len(self.models)} model(s)")

    @property
    def id(self) -> str:
        """Stable label, also a directory name: ``"pspnet"`` or ``"ens-logits-pspnet+deeplab"``."""
        if self.ensemble is None:
            return self.models[0]
        return f"ens-{self.ensemble}-" + "+".join(self.models)


@dataclass(frozen=True)
class AttackInfo:
    """One attack: canonical ``name`` (e.g. "transegpgd+mi"), flat resolved ``settings`` (JSON
    scalars), ``settings_hash`` (see :func:`settings_hash`) and the ``track`` derived from the settings
    (None when they do not define eps, steps and alpha). ``origin``: the plugin that defines the attack
    (None for a built-in one; left out of files then; not part of the settings hash). Build with
    :meth:`from_settings`."""

    name: str
    settings: dict[str, Any]
    settings_hash: str
    track: TrackInfo | None
    origin: Origin | None = field(default=None, metadata={OMIT_DEFAULT: True})

    def __post_init__(self) -> None:
        _check(bool(self.name) and self.name != CLEAN, f"attack name {self.name!r} is not allowed")
        object.__setattr__(self, "origin", Origin.coerce(self.origin))
        object.__setattr__(self, "settings", dict(sorted(self.settings.items())))  # own, ordered copy
        _check(self.settings_hash == settings_hash(self.settings),
               f"attack '{self.name}': settings_hash {self.settings_hash!r} does not match its settings")
        _check(self.track == track_from_settings(self.settings),
               f"attack '{self.name}': track does not match its settings (eps, steps, alpha)")

    @classmethod
    def from_settings(cls, name: str, settings: Mapping[str, Any],
                      origin: Origin | Mapping[str, Any] | None = None) -> AttackInfo:
        """Derive hash and track from the flat settings; ``origin``: a plugin's (Origin or plain mapping)."""
        flat = dict(settings)
        return cls(name=name, settings=flat, settings_hash=settings_hash(flat),
                   track=track_from_settings(flat), origin=origin)


@dataclass(frozen=True)
class Versions:
    """Package versions (strings). ``current()`` fills python, torch, torchmetrics, lightning and the
    benchmark from the running interpreter; pass ``mmseg`` (imported only by the model adapter)."""

    python: str
    torch: str
    torchmetrics: str
    lightning: str
    mmseg: str
    benchmark: str

    @classmethod
    def current(cls, mmseg: str) -> Versions:
        import platform
        from importlib.metadata import version

        import benchmark

        return cls(python=platform.python_version(), torch=version("torch"),
                   torchmetrics=version("torchmetrics"), lightning=version("lightning"),
                   mmseg=mmseg, benchmark=benchmark.__version__)


@dataclass(frozen=True)
class Timings:
    """Wall-clock seconds of the evaluation and throughput in images per second (of this attempt: a
    resumed run counts the images it attacked, not those its journal already held)."""

    wall_s: float
    images_per_s: float

    def __post_init__(self) -> None:
        _check(self.wall_s >= 0 and self.images_per_s >= 0, "timings must be non-negative")


@dataclass(frozen=True)
class NumericsInfo:
    """What decides the last bits of a run's numbers (pitfalls §21): the ``device`` type and
    ``device_name`` (GPU or CPU model), torch's intra-op ``threads`` per process, the attack's
    ``autocast`` dtype (None: fp32), the deterministic-algorithm, cuDNN-benchmark and TF32 settings,
    whether the models ran in ``channels_last`` memory and the ``compile`` backend of the source
    (None: eager; both left out of files that do not use them).
    Two runs with equal numerics on the same versions give bit-identical records; otherwise counts can
    differ at near-tied pixels, which ``benchmark verify`` then allows with a named tolerance."""

    device: str
    device_name: str
    threads: int
    autocast: str | None
    deterministic: bool
    cudnn_benchmark: bool
    tf32: bool
    channels_last: bool = field(default=False, metadata={OMIT_DEFAULT: True})
    compile: str | None = field(default=None, metadata={OMIT_DEFAULT: True})

    @classmethod
    def current(cls, device, autocast: str | None, channels_last: bool = False,
                compile: str | None = None) -> NumericsInfo:
        import torch

        device = torch.device(device)
        if device.type == "cuda":
            name = torch.cuda.get_device_name(device)
        else:
            name = _cpu_model()
        return cls(device=device.type, device_name=name, threads=torch.get_num_threads(), autocast=autocast,
                   deterministic=torch.are_deterministic_algorithms_enabled(),
                   cudnn_benchmark=bool(torch.backends.cudnn.benchmark),
                   tf32=bool(torch.backends.cuda.matmul.allow_tf32), channels_last=channels_last, compile=compile)


def _cpu_model() -> str:
    import platform

    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@dataclass(frozen=True)
class Provenance:
    """Where a run's adversarial images came from when it did not craft them: ``benchmark evaluate``
    read the saved set described by the manifest at ``adv_dir`` with sha256 ``manifest_sha256``."""

    adv_dir: str
    manifest_sha256: str

    def __post_init__(self) -> None:
        _check(bool(SHA256_RE.match(self.manifest_sha256)), "provenance.manifest_sha256 must be 64 hex")
