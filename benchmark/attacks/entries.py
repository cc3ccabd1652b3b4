"""The declarations a method file makes: one :class:`AttackEntry` per base, one :class:`ModifierEntry`
per modifier, listed in the file's module-level ``METHODS`` tuple.

A built-in method file (``bases/segpgd.py``) and a user's plugin file have exactly the same form::

    @dataclass(frozen=True)
    class MySettings(IterativeSettings):
        ...

    def my_loss(logits, labels, ctx): ...

    METHODS = (AttackEntry("myattack", MySettings, lambda s: my_loss, paper="Title, arXiv:...."),)

The registry (:mod:`benchmark.attacks.registry`) collects these tuples: the built-ins from its list of
method modules, the plugins from ``attack.plugins`` or the ``transegpgd_bench.attacks`` entry points.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: The slots a modifier fills: gradient transforms (any number, in canonical order), then at most one
#: pixel transform, one geometry transform and one filter of the model input, and the target mode.
MODIFIER_KINDS = ("grad", "pixel", "geometry", "filter", "target")
#: How a base runs: one core run, APGD's radius stages, or SEA's worst case over its losses.
RUN_KINDS = ("single", "apgd", "sea")


def _never(settings: Any) -> bool:
    return False


def _first(*_: Any) -> int:
    return 1


def sign_step(settings: Any) -> Any:
    """The default step rule: the L-inf sign step of FGSM / PGD."""
    from benchmark.attacks.rules.sign import SignStep

    return SignStep()


@dataclass(frozen=True)
class AttackEntry:
    """A base attack: its settings class, registry defaults, loss and how it runs.

    Args:
        name: the registry name, lowercase letters, digits and ``_`` (``"segpgd"``).
        settings_cls: the frozen settings dataclass, a subclass of ``IterativeSettings``.
        make_loss: settings -> pixel loss ``(logits, labels, ctx) -> (N, H, W)`` (None for a feature or
            image loss).
        paper: title, authors and arXiv id (or venue) of the method; ``benchmark attacks`` lists it.
        defaults: registry defaults, applied before the caller's keywords.
        needs_clean_logits: settings -> whether the loss reads the clean source logits.
        accepts_modifiers: False for FGSM (one step) and the presets (already their modifiers).
        preset_modifiers: modifiers a preset always has (``mifgsm`` -> ("mi",)).
        fixed: settings the caller may not change (FGSM is one step).
        make_feature_loss: settings -> per-image feature loss (FSPGD), or None.
        make_image_loss: settings -> per-image loss on the logits (RP-PGD), or None; it keeps state
            across steps, so such a base takes no geometry transform.
        loss_features: settings -> whether the image loss reads the features of the same forward.
        make_rule: settings -> step rule (default: the sign step).
        target: settings -> the base's own target map (DAG), or None.
        targeted_loss: settings -> the loss of ``+targeted``; None: the base has no targeted mode.
        uses_labels: False for a label-free attack (FSPGD): ignored pixels may move.
        kind: "single" | "apgd" (radius schedule) | "sea" (worst case over losses).
        revision: settings -> the revision of the code behind the numbers (1 until a fix changes them;
            recorded, and so hashed, only when above 1).
    """

    name: str
    settings_cls: type
    make_loss: Callable[[Any], Any]
    paper: str = ""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    needs_clean_logits: Callable[[Any], bool] = _never
    accepts_modifiers: bool = True
    preset_modifiers: tuple[str, ...] = ()
    fixed: Mapping[str, Any] = field(default_factory=dict)
    make_feature_loss: Callable[[Any], Any] | None = None
    make_image_loss: Callable[[Any], Any] | None = None
    loss_features: Callable[[Any], bool] = _never
    make_rule: Callable[[Any], Any] = sign_step
    target: Callable[[Any], Any] | None = None
    targeted_loss: Callable[[Any], Any] | None = None
    uses_labels: bool = True
    kind: str = "single"
    revision: Callable[[Any], int] = _first


@dataclass(frozen=True)
class ModifierEntry:
    """A modifier joined to a base with ``+``.

    Args:
        name: the registry name (``"mi"``).
        settings_cls: the frozen settings dataclass, a subclass of ``Flat``; its field names must not
            clash with any other part's.
        make_part: (modifier settings, base settings) -> the part the core runs in the ``kind`` slot.
        kind: "grad" | "pixel" | "geometry" | "filter" | "target" (:data:`MODIFIER_KINDS`).
        paper: title, authors and arXiv id of the method.
        excludes: modifiers it cannot be joined with (``mi`` excludes ``ni``).
        copy_fields: the settings that count its source passes per step (copies, samples, mixes: what a
            cheaper run lowers).
        revision: (modifier settings, the attack's modifier names) -> the code revision of its numbers.
        mixes_pixels: a "grad" part that moves gradient between pixels (TI's smoothing); geometry
            transforms and filters do by their kind. The conformance check then does not require
            ignored pixels to stay where they are on a per-pixel model.
    """

    name: str
    settings_cls: type
    make_part: Callable[[Any, Any], Any]
    kind: str
    paper: str = ""
    excludes: tuple[str, ...] = ()
    copy_fields: tuple[str, ...] = ()
    revision: Callable[[Any, tuple[str, ...]], int] = _first
    mixes_pixels: bool = False


def part(cls: type) -> Callable[[Any, Any], Any]:
    """A ``make_part`` for a class taking (modifier settings, base settings)."""
    return lambda settings, base: cls(settings, base)
