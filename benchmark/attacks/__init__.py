"""Transfer attacks on semantic segmentation: one iterative L-inf core plus small parts.

Imports only torch and the standard library. Public surface:

    build_attack(name, **settings) -> Attack;  attack(model, images, labels, generator=None) -> Tensor
    ATTACKS, MODIFIERS: read-only registries
    IterativeSettings, SegPGDSettings, TranSegPGDSettings, MomentumSettings, DISettings, TISettings,
    AttackSettings: frozen settings dataclasses

See docs/design attacks.md for the specification.
"""

from benchmark.attacks.registry import ATTACKS, MODIFIERS, Attack, build_attack
from benchmark.attacks.settings import (
    AttackSettings,
    DISettings,
    IterativeSettings,
    MomentumSettings,
    SegPGDSettings,
    TISettings,
    TranSegPGDSettings,
)

__all__ = [
    "ATTACKS",
    "MODIFIERS",
    "Attack",
    "AttackSettings",
    "DISettings",
    "IterativeSettings",
    "MomentumSettings",
    "SegPGDSettings",
    "TISettings",
    "TranSegPGDSettings",
    "build_attack",
]
