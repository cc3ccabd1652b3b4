"""The FGSM presets ``mifgsm``, ``nifgsm``, ``difgsm``, ``tifgsm``: BIM plus one modifier, fixed.

Each is ``bim`` + its modifier at alpha = eps / steps and 10 steps, as the classification papers
(and torchattacks) run them; they take no further modifiers (write ``bim+mi+di`` for combinations).
"""

from __future__ import annotations

from benchmark.attacks.entries import AttackEntry
from benchmark.attacks.losses.ce import ce_loss
from benchmark.attacks.settings import IterativeSettings

#: alpha = eps / steps, 10 steps from the clean image, as the classification papers and torchattacks run them.
PRESET_DEFAULTS = {"alpha": None, "steps": 10, "random_start": False}


METHODS = tuple(
    AttackEntry(name, IterativeSettings, lambda s: ce_loss, defaults=PRESET_DEFAULTS, accepts_modifiers=False,
                preset_modifiers=(modifier,), paper=paper)
    for name, modifier, paper in (
        ("mifgsm", "mi", "Boosting Adversarial Attacks with Momentum, Dong et al., CVPR 2018, arXiv:1710.06081"),
        ("nifgsm", "ni", "Nesterov Accelerated Gradient and Scale Invariance for Adversarial Attacks, Lin et al., "
                         "ICLR 2020, arXiv:1908.06281"),
        ("difgsm", "di", "Improving Transferability of Adversarial Examples with Input Diversity, Xie et al., "
                         "CVPR 2019, arXiv:1803.06978"),
        ("tifgsm", "ti", "Evading Defenses to Transferable Adversarial Examples by Translation-Invariant Attacks, "
                         "Dong et al., CVPR 2019, arXiv:1904.02884"),
    )
)
