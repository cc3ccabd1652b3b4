"""DAG's step: the direction scaled to unit L-inf norm per image, then projected.

Paper: "Adversarial Examples for Semantic Segmentation and Object Detection", Xie, Wang, Zhang, Zhou,
Xie, Yuille, ICCV 2017, arXiv:1703.08603.

    r' = alpha_t * r / ||r||_inf  (per image; r' = 0 where r = 0),   x^{t+1} = Pi(x^t + r')

The original adds gamma * r / ||r||_inf without a budget; here Pi keeps the L-inf ball and the box.
"""

from __future__ import annotations

import torch
from torch import Tensor

from benchmark.attacks.rules.sign import project


def linf_normalise(direction: Tensor) -> Tensor:
    """direction / max |direction| per image; exactly 0 for an all-zero image direction."""
    peak = direction.abs().amax(dim=tuple(range(1, direction.dim())), keepdim=True)
    positive = peak > 0
    return torch.where(positive, direction / torch.where(positive, peak, torch.ones_like(peak)), 0.0)


class LinfNormalisedStep:
    """DAG's step rule; stateless."""

    def init(self, x0: Tensor, eps: float) -> None:
        return None

    def step(self, x, direction, values, alpha_t, lower, upper, state, t):
        return project(x + alpha_t * linf_normalise(direction), lower, upper).detach(), state
