"""SEA (Segmentation Ensemble Attack): per image, the worst case over APGD runs with several losses.

Paper: "Towards Reliable Evaluation and Fast Training of Robust Semantic Segmentation Models", Croce,
Singh, Hein, arXiv:2306.12941. Each member is an APGD run (``bases/apgd.py``) on one loss of
``losses/sea.py``; ``runners.WorstCase`` keeps, per image, the member that fools the source most.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.attacks.bases.apgd import (
    APGD_DEFAULTS,
    APGD_LOSSES,
    APGDRuleSettings,
    apgd_rule,
)
from benchmark.attacks.entries import AttackEntry
from benchmark.attacks.settings import fail


@dataclass(frozen=True)
class SEASettings(APGDRuleSettings):
    """SEA: per image, the worst case over APGD runs with several segmentation losses.

    Paper: "Towards Reliable Evaluation and Fast Training of Robust Semantic Segmentation Models",
    Croce, Singh, Hein, arXiv:2306.12941.

    Args:
        (all of IterativeSettings; ``steps`` is per loss (the paper: 300); alpha not used)
        sea_losses: comma-separated APGD losses (default "masked_ce,balanced_ce,js,mask_norm").
        initial_step, momentum, rho: as APGDSettings.
        radius_schedule: default "progressive" (the paper's 2 eps -> 1.5 eps -> eps).
    """

    sea_losses: str = "masked_ce,balanced_ce,js,mask_norm"
    radius_schedule: str = "progressive"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.sea_losses, str):
            fail("sea_losses", self.sea_losses, "must be a comma-separated string of losses")
        names = [name.strip() for name in self.sea_losses.split(",")]
        if not names or any(name not in APGD_LOSSES for name in names) or len(set(names)) != len(names):
            fail("sea_losses", self.sea_losses, f"must name distinct losses among {', '.join(APGD_LOSSES)}")
        object.__setattr__(self, "sea_losses", ",".join(names))


# Revision 2: APGD's checkpoints one step later (its members are APGD runs).
METHODS = (AttackEntry(
    "sea", SEASettings, lambda s: None,
    paper="Towards Reliable Evaluation and Fast Training of Robust Semantic Segmentation Models, Croce, Singh, "
          "Hein, arXiv:2306.12941",
    defaults=APGD_DEFAULTS, make_rule=apgd_rule, kind="sea", revision=lambda s: 2,
),)
