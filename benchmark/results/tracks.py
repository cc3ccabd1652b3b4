"""Tracks (attacks.md §4.6), settings hashes and content hashes.

A track fixes the threat model, eps, steps and the step-size rule for every attack it ranks. Its name
is defined once, by :func:`track_name`, from the numbers alone (so ``alpha=None`` and an explicit
``alpha = eps / steps`` name the same track):

    ``linf-<eps>-t<steps>-<alpha>``

- ``<eps>``: eps in 1/255 units, e.g. ``8``; a non-integer is written with ``p`` for the point
  (``0p5``), rounded to 4 decimals;
- ``<alpha>``: ``ae`` when alpha == eps / steps (relative tolerance 1e-9), else ``a<alpha in 1/255
  units>`` written like eps: ``a2`` for 2/255, ``a0p25`` for 0.25/255.

- a targeted attack (``+targeted``) ranks in its own track, with the suffix ``-tperm`` (target map:
  a permutation of the classes per image) or ``-tc<k>`` (class k everywhere).

Examples: ``linf-8-t20-a2`` (alpha = 2/255), ``linf-8-t20-ae`` (alpha = eps/20), ``linf-4-t1-ae``
(FGSM: alpha = eps, one step), ``linf-8-t10-a2-tc0`` (PGD towards class 0).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from benchmark.errors import ResultError
from benchmark.results.codec import OMIT_DEFAULT

NORMS = ("linf",)


def canonical_json(value: Any) -> str:
    """Deterministic JSON text: sorted keys, no spaces, NaN rejected."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False,
                          ensure_ascii=True)
    except ValueError as err:
        raise ResultError(f"value cannot be written as strict JSON: {err}") from None


def short_hash(value: Any) -> str:
    """First 12 hex digits of the sha256 of :func:`canonical_json` of ``value``."""
    return hashlib.sha256(canonical_json(value).encode("ascii")).hexdigest()[:12]


def settings_hash(settings: Mapping[str, Any]) -> str:
    """Short hash of an attack's flat resolved settings (key order does not matter)."""
    return short_hash(dict(settings))


def _units_255(value: float) -> str:
    x = round(value * 255.0, 4)
    if abs(x - round(x)) < 1e-9:
        return str(int(round(x)))
    return f"{x:.4f}".rstrip("0").replace(".", "p")


UNTARGETED = "untargeted"


def goal_of(settings: Mapping[str, Any]) -> str:
    """"untargeted", or "targeted:permutation" / "targeted:class=<k>" for a ``+targeted`` attack."""
    name = settings.get("attack")
    if not isinstance(name, str) or "targeted" not in name.split("+")[1:]:
        return UNTARGETED
    if settings.get("target_rule") == "class":
        return f"targeted:class={settings.get('target_class', 0)}"
    return "targeted:permutation"


def _goal_suffix(goal: str) -> str:
    if goal == UNTARGETED:
        return ""
    if goal == "targeted:permutation":
        return "-tperm"
    if goal.startswith("targeted:class="):
        return "-tc" + goal.removeprefix("targeted:class=")
    raise ResultError(f"unknown attack goal {goal!r}")


def track_name(eps: float, steps: int, alpha: float, norm: str = "linf", goal: str = UNTARGETED) -> str:
    """The one definition of a track's name; see the module docstring."""
    if norm not in NORMS:
        raise ResultError(f"unsupported norm {norm!r}; tracks exist for {list(NORMS)}")
    if math.isclose(alpha, eps / steps, rel_tol=1e-9, abs_tol=0.0):
        step = "ae"
    else:
        step = "a" + _units_255(alpha)
    return f"{norm}-{_units_255(eps)}-t{steps}-{step}{_goal_suffix(goal)}"


@dataclass(frozen=True)
class TrackInfo:
    """Threat model of a track. ``eps`` and ``alpha`` are fractions of the [0, 1] pixel range;
    ``eps_255`` and ``alpha_255`` are the same in 1/255 units, for readers. ``alpha_rule`` is
    "eps/steps" or "fixed". ``goal`` is "untargeted" or, for a ``+targeted`` attack,
    "targeted:permutation" / "targeted:class=<k>"."""

    name: str
    norm: str
    eps: float
    eps_255: float
    steps: int
    alpha: float
    alpha_255: float
    alpha_rule: str
    goal: str = field(default=UNTARGETED, metadata={OMIT_DEFAULT: True})  # absent from untargeted files

    def __post_init__(self) -> None:
        if not 0.0 < self.eps <= 1.0 or self.steps < 1 or self.alpha <= 0.0:
            raise ResultError(f"track {self.name!r}: need 0 < eps <= 1, steps >= 1, alpha > 0")
        expected = track_name(self.eps, self.steps, self.alpha, self.norm, self.goal)
        if self.name != expected:
            raise ResultError(f"track name {self.name!r} does not match its eps, steps, alpha and goal "
                              f"(expected {expected!r})")

    @classmethod
    def of(cls, eps: float, steps: int, alpha: float | None, norm: str = "linf",
           goal: str = UNTARGETED) -> TrackInfo:
        """Track of an L-inf attack; ``alpha=None`` means eps / steps."""
        alpha = eps / steps if alpha is None else float(alpha)
        rule = "eps/steps" if math.isclose(alpha, eps / steps, rel_tol=1e-9) else "fixed"
        return cls(name=track_name(eps, steps, alpha, norm, goal), norm=norm, eps=float(eps),
                   eps_255=eps * 255.0, steps=int(steps), alpha=alpha, alpha_255=alpha * 255.0,
                   alpha_rule=rule, goal=goal)


def track_from_settings(settings: Mapping[str, Any]) -> TrackInfo | None:
    """Track from flat attack settings (keys ``eps``, ``steps``, ``alpha``, optional ``norm``; the goal
    from ``attack``, ``target_rule`` and ``target_class``); None when eps or steps is missing or not a
    number."""
    eps, steps, alpha = settings.get("eps"), settings.get("steps"), settings.get("alpha")
    numeric = (int, float)
    if (not isinstance(eps, numeric) or isinstance(eps, bool) or not isinstance(steps, int)
            or isinstance(steps, bool) or (alpha is not None and not isinstance(alpha, numeric))):
        return None
    return TrackInfo.of(float(eps), steps, alpha, str(settings.get("norm", "linf")), goal_of(settings))
