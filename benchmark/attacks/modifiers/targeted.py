"""``+targeted``: the attack descends its targeted loss towards a target label map.

The map is drawn per image by ``targets.target_map``: a random K-cycle of the classes
("permutation") or one class everywhere ("class"). A base offers the mode through its entry's
``targeted_loss`` (FGSM / BIM / PGD and APGD-CE: -CE, ``losses/ce.py``; TsallisPGD: -L_q).
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.attacks.core import TargetSpec
from benchmark.attacks.entries import ModifierEntry
from benchmark.attacks.settings import Flat, target_fields


@dataclass(frozen=True)
class TargetedSettings(Flat):
    """Targeted mode: the loss is descended towards a target label map (``pgd+targeted``).

    Args:
        target_rule: "permutation" (a random K-cycle of the classes per image, default) | "class".
        target_class: the class of ``target_rule="class"`` (default 0).
    """

    target_rule: str = "permutation"
    target_class: int = 0

    def __post_init__(self) -> None:
        target_fields(self)


METHODS = (ModifierEntry(
    "targeted", TargetedSettings, lambda m, b: TargetSpec(m.target_rule, m.target_class), "target",
    paper="targeted mode of the iterative attacks, e.g. Kurakin et al., arXiv:1607.02533",
),)
