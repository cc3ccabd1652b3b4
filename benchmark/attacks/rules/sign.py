"""The sign step of FGSM / BIM / PGD and of every attack that does not choose another rule.

    x^{t+1} = Pi(x^t + alpha_t * sign(d^t)),   Pi(z) = clamp(z, lower, upper)
"""

from __future__ import annotations

import torch
from torch import Tensor


def project(z: Tensor, lower: Tensor, upper: Tensor) -> Tensor:
    """Pi(z) = clamp(z, max(x - eps, 0), min(x + eps, 1)), with the bounds precomputed."""
    return torch.max(torch.min(z, upper), lower)


class SignStep:
    """The default step rule; stateless."""

    def init(self, x0: Tensor, eps: float) -> None:
        return None

    def step(self, x, direction, values, alpha_t, lower, upper, state, t):
        return project(x + alpha_t * direction.sign(), lower, upper).detach(), state
