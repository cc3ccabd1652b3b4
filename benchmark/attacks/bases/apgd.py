"""APGD: the adaptive step-size rule with momentum and restarts from the best point, on CE or on one of
SEA's segmentation losses, optionally over a progressive radius schedule.

Papers: "Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free
attacks", Croce, Hein, arXiv:2003.01690 (the rule, ``rules/apgd.py``); "Towards Reliable Evaluation and
Fast Training of Robust Semantic Segmentation Models", Croce, Singh, Hein, arXiv:2306.12941 (the losses,
``losses/sea.py``, and the radius schedule, ``runners.RadiusStages``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from benchmark.attacks.entries import AttackEntry
from benchmark.attacks.losses.ce import ce_loss, targeted_ce_loss
from benchmark.attacks.losses.sea import sea_loss
from benchmark.attacks.parts import PixelLoss
from benchmark.attacks.rules.apgd import APGDStep
from benchmark.attacks.settings import (
    IterativeSettings,
    choice,
    positive,
    unit_interval,
)

APGD_LOSSES = ("ce", "masked_ce", "balanced_ce", "balanced_masked_ce", "js", "mask_norm")
RADIUS_SCHEDULES = ("constant", "progressive")

@dataclass(frozen=True)
class APGDRuleSettings(IterativeSettings):
    """The APGD step rule's fields, shared by APGD and SEA (registry defaults steps 20, no random
    start, return_iterate "best"; ``alpha`` is not used)."""

    steps: int = 20
    random_start: bool = False
    return_iterate: str = "best"
    initial_step: float = 2.0
    momentum: float = 0.75
    rho: float = 0.75
    radius_schedule: str = "constant"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "initial_step", positive("initial_step", self.initial_step))
        object.__setattr__(self, "momentum", unit_interval("momentum", self.momentum, low_open=True))
        object.__setattr__(self, "rho", unit_interval("rho", self.rho, low_open=True))
        choice("radius_schedule", self.radius_schedule, RADIUS_SCHEDULES)


@dataclass(frozen=True)
class APGDSettings(APGDRuleSettings):
    """APGD: the adaptive step-size rule with momentum and restarts from the best point.

    Papers: Croce, Hein, arXiv:2003.01690 (APGD); Croce, Singh, Hein, arXiv:2306.12941 (the
    segmentation losses and the radius schedule).

    Args:
        (all of IterativeSettings; registry defaults steps 20, no random start, return_iterate
        "best"; ``alpha`` is not used: the rule's own step starts at ``initial_step * eps``)
        loss: "ce" | "masked_ce" | "balanced_ce" | "balanced_masked_ce" | "js" | "mask_norm".
        initial_step: eta at start, a multiple of eps (default 2.0).
        momentum: APGD's a in (0, 1] (default 0.75).
        rho: oscillation threshold in (0, 1] (default 0.75).
        radius_schedule: "constant" | "progressive" (30 % of the steps at 2 eps, 30 % at 1.5 eps,
            the rest at eps, each stage starting from the previous stage's best point).
    """

    loss: str = "ce"

    def __post_init__(self) -> None:
        super().__post_init__()
        choice("loss", self.loss, APGD_LOSSES)


def apgd_rule(settings: APGDRuleSettings) -> APGDStep:
    """APGD's step rule from its settings (shared with SEA)."""
    return APGDStep(settings.steps, settings.initial_step, settings.momentum, settings.rho)


def _loss(settings: APGDSettings) -> PixelLoss:
    return ce_loss if settings.loss == "ce" else functools.partial(sea_loss, loss=settings.loss)


#: Registry defaults of APGD and SEA: the rule sets its own step, so alpha is unused.
APGD_DEFAULTS = {"alpha": None, "steps": 20, "random_start": False}

# Revision 2: the checkpoints fall one step later, as in the authors' code.
METHODS = (AttackEntry(
    "apgd", APGDSettings, _loss,
    paper="Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free attacks, "
          "Croce, Hein, arXiv:2003.01690; segmentation losses: Croce, Singh, Hein, arXiv:2306.12941",
    defaults=APGD_DEFAULTS, make_rule=apgd_rule, kind="apgd", revision=lambda s: 2,
    targeted_loss=lambda s: targeted_ce_loss if s.loss == "ce" else None,
),)
