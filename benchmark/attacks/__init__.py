"""Transfer attacks on semantic segmentation: one iterative L-inf core plus small parts.

Imports only torch and the standard library. Public surface:

    build_attack(name, **settings) -> Attack;  attack(model, images, labels, generator=None) -> Tensor
    ATTACKS, MODIFIERS: read-only registries (base attacks; modifiers joined with ``+``)
    count_passes(name, **settings) -> Passes: source passes per image of a whole run (counted)
    *Settings: frozen, validated settings dataclasses, one per base attack and per modifier

Each method is one file: ``bases/<name>.py`` (settings, loss, declaration) or ``modifiers/<name>.py``
(settings, transform, declaration). Shared parts live in ``losses/`` (CE, SEA's losses), ``rules/`` (step
rules), ``runners.py`` (radius stages, per-image worst case); ``core.run`` is the one loop,
``registry.py`` collects the declarations, ``attack.py`` builds an attack from a name. See docs/design
attacks.md for the specification.
"""

from benchmark.attacks.attack import Attack, build_attack
from benchmark.attacks.bases.apgd import APGDSettings
from benchmark.attacks.bases.dag import DAGSettings
from benchmark.attacks.bases.fspgd import FSPGDSettings
from benchmark.attacks.bases.rppgd import RPPGDSettings
from benchmark.attacks.bases.sea import SEASettings
from benchmark.attacks.bases.segpgd import SegPGDSettings
from benchmark.attacks.bases.transegpgd import TranSegPGDSettings
from benchmark.attacks.bases.tsallispgd import TsallisPGDSettings
from benchmark.attacks.modifiers.admix import AdmixSettings
from benchmark.attacks.modifiers.blur import BlurSettings
from benchmark.attacks.modifiers.bsr import BSRSettings
from benchmark.attacks.modifiers.di import DISettings
from benchmark.attacks.modifiers.ds import DSSettings
from benchmark.attacks.modifiers.momentum import MomentumSettings
from benchmark.attacks.modifiers.si import SISettings
from benchmark.attacks.modifiers.ssa import SSASettings
from benchmark.attacks.modifiers.targeted import TargetedSettings
from benchmark.attacks.modifiers.tdi import TDISettings
from benchmark.attacks.modifiers.ti import TISettings
from benchmark.attacks.modifiers.vt import VTSettings
from benchmark.attacks.passes import Passes, count_passes
from benchmark.attacks.registry import ATTACKS, LISTED_COMBINATIONS, MODIFIERS
from benchmark.attacks.settings import AttackSettings, IterativeSettings

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
