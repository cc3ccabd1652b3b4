"""The shared settings of every attack: the iterative core's fields, the validators, the joined settings.

Each method file (``bases/*.py``, ``modifiers/*.py``) declares its own frozen settings dataclass on top
of :class:`IterativeSettings` (a base) or :class:`Flat` (a modifier), validated in ``__post_init__``
with the validators here. Units: ``eps`` and ``alpha`` are fractions of the [0, 1] pixel range (8/255,
not 8). Every error is a :class:`benchmark.errors.ConfigError` whose one-line message names the field
and the bad value. ``to_dict()`` gives the flat, JSON-ready dict of resolved values;
:class:`AttackSettings` joins the parts of one attack and adds a short stable hash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from benchmark.errors import ConfigError

STEP_SCHEDULES = ("constant", "linear", "cosine", "uniform")

#: Dataclass field metadata key: the field is left out of ``to_dict()`` -- so out of result files and
#: the settings hash -- while it holds its default. For options added after results were recorded
#: without them: the default reproduces those results and keeps their hashes (the result schema's
#: ``benchmark.results.codec.OMIT_DEFAULT`` does the same for result records).
OMIT_DEFAULT = "omit_default"


def fail(field_name: str, value: Any, why: str) -> None:
    raise ConfigError(f"{field_name}={value!r}: {why}")


def real(field_name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        fail(field_name, value, "must be a finite number")
    return float(value)


def integer(field_name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        fail(field_name, value, "must be an integer")
    return value


def boolean(field_name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        fail(field_name, value, "must be true or false")
    return value


def choice(field_name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        fail(field_name, value, f"must be one of {', '.join(repr(c) for c in choices)}")
    return value


def unit_interval(field_name: str, value: Any, *, low_open: bool = False, high: float = 1.0) -> float:
    v = real(field_name, value)
    if v > high or v < 0 or (low_open and v == 0):
        fail(field_name, value, f"must lie in {'(' if low_open else '['}0, {high}]")
    return v


def positive(field_name: str, value: Any) -> float:
    v = real(field_name, value)
    if v <= 0:
        fail(field_name, value, "must be > 0")
    return v


def count(field_name: str, value: Any, low: int = 1) -> int:
    if integer(field_name, value) < low:
        fail(field_name, value, f"must be an integer >= {low}")
    return value


def odd_kernel(field_name: str, value: Any) -> None:
    """A Gaussian kernel's side: an odd integer >= 1 (pixels)."""
    k = integer(field_name, value)
    if k < 1 or k % 2 == 0:
        fail(field_name, value, "must be an odd integer >= 1")


TARGET_RULES = ("permutation", "class")


def target_fields(settings: Any) -> None:
    """``target_rule`` / ``target_class`` of a targeted part (DAG, ``+targeted``)."""
    choice("target_rule", settings.target_rule, TARGET_RULES)
    count("target_class", settings.target_class, low=0)



class Flat:
    """Base of every settings dataclass: a flat dict of the resolved fields (every field is a scalar); a field marked
    :data:`OMIT_DEFAULT` appears only when it differs from its default."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)  # type: ignore[arg-type]
                if not (f.metadata.get(OMIT_DEFAULT) and getattr(self, f.name) == f.default)}


@dataclass(frozen=True)
class IterativeSettings(Flat):
    """The iterative L-inf core shared by every attack (FGSM, BIM, PGD, CosPGD, the FGSM presets).

    Paper (PGD): "Towards Deep Learning Models Resistant to Adversarial Attacks", Madry et al.,
    arXiv:1706.06083; (BIM) Kurakin et al., arXiv:1607.02533; (FGSM) Goodfellow et al., arXiv:1412.6572.

    Args:
        eps: L-inf budget, fraction of the [0, 1] pixel range, in (0, 1] (default 8/255).
        alpha: step size, same unit (registry default per attack; None means eps / steps).
        steps: iterations T >= 1.
        random_start: start uniformly inside the eps-ball.
        ignore_index: label excluded from loss, partitions and statistics (default 255).
        step_schedule: "constant" | "linear" | "cosine" | "uniform"; each has mean step alpha.
        step_min_ratio: rho in (0, 1]; dynamic schedules range over [rho, 2 - rho] * alpha.
        loss_normalizer: "valid" (per-image valid-pixel count) | "all" (H * W).
        label_source: "ground_truth" | "clean_pred" (source's clean argmax; ignore mask from labels).
        return_iterate: "last" | "best" (per image, lowest source valid-pixel accuracy).
        ensemble: "logits" (average logits) | "loss" (average pixel losses); used when the model
            argument is a sequence of models.

    Shapes:
        images (N, C, H, W) float in [0, 1]; labels (N, H, W) int64; output like images.

    Example:
        >>> attack = build_attack("pgd", eps=8 / 255, steps=10)
        >>> adv = attack(model, images, labels, generator=torch.Generator().manual_seed(0))
    """

    eps: float = 8 / 255
    alpha: float | None = 2 / 255
    steps: int = 10
    random_start: bool = True
    ignore_index: int = 255
    step_schedule: str = "constant"
    step_min_ratio: float = 0.5
    loss_normalizer: str = "valid"
    label_source: str = "ground_truth"
    return_iterate: str = "last"
    ensemble: str = "logits"

    def __post_init__(self) -> None:
        eps = real("eps", self.eps)
        if not 0 < eps <= 1:
            hint = f" (did you mean {eps:g}/255?)" if 1 < eps <= 255 else ""
            fail("eps", self.eps, f"must lie in (0, 1], a fraction of the pixel range{hint}")
        steps = integer("steps", self.steps)
        if steps < 1:
            fail("steps", self.steps, "must be >= 1")
        alpha = eps / steps if self.alpha is None else real("alpha", self.alpha)
        if alpha <= 0:
            fail("alpha", self.alpha, "must be > 0")
        object.__setattr__(self, "eps", eps)
        object.__setattr__(self, "alpha", alpha)
        boolean("random_start", self.random_start)
        integer("ignore_index", self.ignore_index)
        choice("step_schedule", self.step_schedule, STEP_SCHEDULES)
        object.__setattr__(
            self, "step_min_ratio", unit_interval("step_min_ratio", self.step_min_ratio, low_open=True)
        )
        choice("loss_normalizer", self.loss_normalizer, ("valid", "all"))
        choice("label_source", self.label_source, ("ground_truth", "clean_pred"))
        choice("return_iterate", self.return_iterate, ("last", "best"))
        choice("ensemble", self.ensemble, ("logits", "loss"))


@dataclass(frozen=True)
class AttackSettings:
    """Every resolved setting of one built attack: its canonical name, base and modifier settings.

    ``to_dict()`` is flat: ``{"attack": name, <base fields>, <modifier fields>}``; field names never
    collide (the registry checks it). ``revision`` is the revision of the code behind the numbers
    (the registry derives it from the method files' declarations); it is recorded only when above 1,
    so every attack whose numbers never changed keeps its hash. ``settings_hash()`` is the first 12 hex
    digits of the sha256 of that dict as sorted, compact JSON, so it is stable across processes and
    platforms.
    """

    name: str
    base: IterativeSettings
    modifiers: tuple[Any, ...] = field(default=())
    revision: int = 1

    def to_dict(self) -> dict[str, Any]:
        flat: dict[str, Any] = {"attack": self.name}
        for part in (self.base, *self.modifiers):
            flat.update(part.to_dict())
        if self.revision > 1:
            flat["revision"] = self.revision
        return flat

    def settings_hash(self) -> str:
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def build_options(flat: Mapping[str, Any]) -> dict[str, Any]:
    """The options of flat settings (``to_dict()``, a result's attack settings) that build the attack
    again: all but its name and the code revision, which the running code decides."""
    return {k: v for k, v in flat.items() if k not in ("attack", "revision")}
