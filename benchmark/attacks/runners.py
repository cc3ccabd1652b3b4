"""How a built attack runs the core: once, as stages of a radius schedule, or as a per-image worst case.

- :class:`Single`: one :func:`core.run`.
- :class:`RadiusStages`: SEA's progressive radius reduction. The run's T steps are split 30 % / 30 % /
  40 % over eps_1 = 2 eps, eps_2 = 1.5 eps, eps_3 = eps (stages with no step are skipped); each stage
  is a fresh core run (its step rule starts anew) that starts from the previous stage's result
  projected onto its own ball. Only the last stage's ball is the attack's budget.
- :class:`WorstCase`: SEA's ensemble. Every member attacks the images; per image the result is the
  member output with the lowest valid-pixel accuracy of the source (the mean logits of an ensemble
  source); earlier members win ties. One extra source forward per member.

All runs draw from the same per-image generators in a fixed order, so results stay deterministic
and batch-independent.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch
from torch import Tensor

from benchmark.attacks import core

STAGE_SHARES = (0.3, 0.3)
STAGE_RADII = (2.0, 1.5, 1.0)


class Single:
    def __init__(self, plan: core.Plan) -> None:
        self.plan = plan

    def __call__(self, model, images: Tensor, labels: Tensor, generator, x_init: Tensor | None = None) -> Tensor:
        return core.run(self.plan, model, images, labels, generator, x_init=x_init)


def stage_steps(steps: int) -> list[int]:
    """Steps of the three radius stages: floor(0.3 T), floor(0.3 T), the rest."""
    first = [math.floor(share * steps) for share in STAGE_SHARES]
    return [*first, steps - sum(first)]


class RadiusStages:
    """The progressive radius schedule over plans built by ``make_plan(eps, steps)``."""

    def __init__(self, make_plan, eps: float, steps: int) -> None:
        self.plans = [make_plan(min(radius * eps, 1.0), n)
                      for radius, n in zip(STAGE_RADII, stage_steps(steps)) if n > 0]

    def __call__(self, model, images: Tensor, labels: Tensor, generator, x_init: Tensor | None = None) -> Tensor:
        x = x_init
        for plan in self.plans:
            x = core.run(plan, model, images, labels, generator, x_init=x)
        return x


class WorstCase:
    """Per image, the member result the source gets most wrong."""

    def __init__(self, members: Sequence, ignore_index: int) -> None:
        self.members = list(members)
        self.ignore_index = ignore_index

    def __call__(self, model, images: Tensor, labels: Tensor, generator, x_init: Tensor | None = None) -> Tensor:
        models = core.as_models(model)
        valid = labels != self.ignore_index
        best, best_acc = None, None
        for member in self.members:
            adv = member(model, images, labels, generator, x_init)
            acc = core.source_accuracy(core.ensemble_logits(models, adv), labels, valid)
            if best is None:
                best, best_acc = adv, acc
                continue
            take = acc < best_acc
            best = torch.where(take[:, None, None, None], adv, best)
            best_acc = torch.where(take, acc, best_acc)
        return best


def with_budget(settings, eps: float, steps: int):
    """``settings`` with another eps and number of steps (alpha kept)."""
    return dataclasses.replace(settings, eps=eps, steps=steps)
