"""Transfer attacks on semantic segmentation: one iterative L-inf core plus small parts.

Imports only torch and the standard library. Public surface:

    build_attack(name, **settings) -> Attack;  attack(model, images, labels, generator=None) -> Tensor
    ATTACKS, MODIFIERS: read-only registries (base attacks; modifiers joined with ``+``)
    count_passes(name, **settings) -> Passes: source passes per image of a whole run (counted)
    *Settings: frozen, validated settings dataclasses, one per base attack and per modifier

Parts live in ``losses/`` (per-pixel and feature losses), ``transforms/`` (gradient, pixel and geometry
transforms), ``rules/`` (step rules) and ``runners.py`` (restarts, radius stages, per-image worst case);
``core.run`` is the one loop. See docs/design attacks.md for the specification.
"""

from benchmark.attacks.passes import Passes, count_passes
from benchmark.attacks.registry import ATTACKS, LISTED_COMBINATIONS, MODIFIERS, Attack, build_attack
from benchmark.attacks.settings import (
    AdmixSettings,
    APGDSettings,
    AttackSettings,
    BlurSettings,
    BSRSettings,
    DAGSettings,
    DISettings,
    DSSettings,
    FSPGDSettings,
    IterativeSettings,
    MomentumSettings,
    RPPGDSettings,
    SEASettings,
    SegPGDSettings,
    SISettings,
    SSASettings,
    TargetedSettings,
    TDISettings,
    TISettings,
    TranSegPGDSettings,
    TsallisPGDSettings,
    VTSettings,
)

__all__ = [
    "ATTACKS",
    "LISTED_COMBINATIONS",
    "MODIFIERS",
    "APGDSettings",
    "AdmixSettings",
    "Attack",
    "AttackSettings",
    "BSRSettings",
    "BlurSettings",
    "DAGSettings",
    "DISettings",
    "DSSettings",
    "FSPGDSettings",
    "IterativeSettings",
    "MomentumSettings",
    "Passes",
    "RPPGDSettings",
    "SEASettings",
    "SISettings",
    "SSASettings",
    "SegPGDSettings",
    "TDISettings",
    "TISettings",
    "TargetedSettings",
    "TranSegPGDSettings",
    "TsallisPGDSettings",
    "VTSettings",
    "build_attack",
    "count_passes",
]
