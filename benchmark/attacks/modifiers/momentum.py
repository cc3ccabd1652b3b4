"""MI-FGSM and NI-FGSM momentum as a gradient transform.

Papers: "Boosting Adversarial Attacks with Momentum", Dong et al., CVPR 2018, arXiv:1710.06081;
"Nesterov Accelerated Gradient and Scale Invariance for Adversarial Attacks", Lin et al., ICLR 2020,
arXiv:1908.06281.

    g^0 = 0,  g_hat = grad / mean(|grad|) per image (0 where that mean is 0),  g <- decay * g + g_hat

The direction is the new g. NI additionally queries the gradient at x^t + alpha_t * decay * g^t (the
core adds alpha_t; ``lookahead`` returns decay * g). The normalisation is per image, never over the
batch, so an image's result does not depend on its batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from benchmark.attacks.entries import ModifierEntry
from benchmark.attacks.settings import Flat, fail, real


@dataclass(frozen=True)
class MomentumSettings(Flat):
    """MI-FGSM / NI-FGSM momentum on the per-image mean-|grad| normalised gradient.

    Paper: "Boosting Adversarial Attacks with Momentum", Dong et al., CVPR 2018, arXiv:1710.06081;
    NI: "Nesterov Accelerated Gradient and Scale Invariance for Adversarial Attacks", Lin et al.,
    ICLR 2020, arXiv:1908.06281.

    Args:
        decay: momentum factor mu >= 0, unitless (default 1.0; 0 gives BIM).
    """

    decay: float = 1.0

    def __post_init__(self) -> None:
        decay = real("decay", self.decay)
        if decay < 0:
            fail("decay", self.decay, "must be >= 0")
        object.__setattr__(self, "decay", decay)


def l1_normalise(grad: Tensor) -> Tensor:
    """grad / mean(|grad|) over (C, H, W) of each image; exactly 0 for an all-zero image gradient."""
    mean = grad.abs().mean(dim=tuple(range(1, grad.dim())), keepdim=True)
    positive = mean > 0
    # Divide by 1 where the mean is 0 (grad is 0 there too), never by a clamped epsilon.
    return torch.where(positive, grad / torch.where(positive, mean, torch.ones_like(mean)), torch.zeros_like(grad))


class Momentum:
    """Momentum gradient transform; ``nesterov=True`` gives NI-FGSM's look-ahead.

    Args:
        settings: MomentumSettings (decay, unitless).
        nesterov: query the gradient at the look-ahead point (NI).

    Shapes:
        grad (N, C, H, W); state: the momentum buffer g, (N, C, H, W).
    """

    order = 1  # after TI

    def __init__(self, settings: MomentumSettings, nesterov: bool = False) -> None:
        self.decay = settings.decay
        self.nesterov = nesterov

    def init(self, x: Tensor) -> Tensor:
        return torch.zeros_like(x)

    def __call__(self, grad: Tensor, state: Tensor, probe=None) -> tuple[Tensor, Tensor]:
        g = self.decay * state + l1_normalise(grad)
        return g, g

    def lookahead(self, state: Tensor) -> Tensor | None:
        return self.decay * state if self.nesterov else None


METHODS = (
    ModifierEntry("mi", MomentumSettings, lambda m, b: Momentum(m), "grad", excludes=("ni",),
                  paper="Boosting Adversarial Attacks with Momentum, Dong et al., CVPR 2018, arXiv:1710.06081"),
    ModifierEntry("ni", MomentumSettings, lambda m, b: Momentum(m, nesterov=True), "grad", excludes=("mi",),
                  paper="Nesterov Accelerated Gradient and Scale Invariance for Adversarial Attacks, Lin et al., "
                        "ICLR 2020, arXiv:1908.06281"),
)
