"""FGSM, BIM and PGD: the iterative L-inf core on the plain per-pixel cross-entropy.

Papers: "Explaining and Harnessing Adversarial Examples", Goodfellow et al., arXiv:1412.6572 (FGSM, one
step of size eps); "Adversarial examples in the physical world", Kurakin et al., arXiv:1607.02533 (BIM,
from the clean image); "Towards Deep Learning Models Resistant to Adversarial Attacks", Madry et al.,
arXiv:1706.06083 (PGD, from a uniform random start in the eps-ball). Settings: :class:`IterativeSettings`.
"""

from __future__ import annotations

from benchmark.attacks.entries import AttackEntry
from benchmark.attacks.losses.ce import ce_loss, targeted_ce_loss
from benchmark.attacks.parts import PixelLoss
from benchmark.attacks.settings import IterativeSettings

#: Registry defaults of PGD (random start) and BIM (none), which the re-weighted PGD variants start from.
PGD_DEFAULTS = {"alpha": 2 / 255, "steps": 10, "random_start": True}
BIM_DEFAULTS = {"alpha": 2 / 255, "steps": 10, "random_start": False}


def _ce(settings: IterativeSettings) -> PixelLoss:
    return ce_loss


def _targeted_ce(settings: IterativeSettings) -> PixelLoss:
    return targeted_ce_loss


METHODS = (
    AttackEntry("fgsm", IterativeSettings, _ce, defaults={"alpha": None, "steps": 1, "random_start": False},
                accepts_modifiers=False, fixed={"steps": 1},
                paper="Explaining and Harnessing Adversarial Examples, Goodfellow et al., arXiv:1412.6572"),
    AttackEntry("bim", IterativeSettings, _ce, defaults=BIM_DEFAULTS, targeted_loss=_targeted_ce,
                paper="Adversarial examples in the physical world, Kurakin et al., arXiv:1607.02533"),
    AttackEntry("pgd", IterativeSettings, _ce, defaults=PGD_DEFAULTS, targeted_loss=_targeted_ce,
                paper="Towards Deep Learning Models Resistant to Adversarial Attacks, Madry et al., "
                      "arXiv:1706.06083"),
)
