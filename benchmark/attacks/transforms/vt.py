"""VT: variance tuning, the gradient corrected by the gradient variance of the previous step.

Paper: "Enhancing the Transferability of Adversarial Attacks through Variance Tuning", Wang, He,
CVPR 2021, arXiv:2103.15571 (VMI-FGSM is ``bim+mi+vt``, VNI-FGSM ``bim+ni+vt``).

    d^t = g^t + v^t,   v^{t+1} = (1 / N) sum_k grad J(x^t + r_k) - g^t,   r_k ~ U[-beta eps, beta eps]^d,
    v^0 = 0

g^t is the raw gradient at the query point x_q (x^t, or NI's look-ahead point); the neighbours are
drawn around the iterate x^t, also under NI (as the authors' VNI-FGSM and torchattacks' VNIFGSM do),
and are not clipped to the box (as in the paper). The core's probe computes each neighbour gradient with the
attack's full objective (its loss and its input transforms, fresh draws). VT runs before TI and
momentum. N extra forward and backward passes per step (times the copies of a pixel transform).
"""

from __future__ import annotations

import torch
from torch import Tensor

from benchmark.attacks.parts import Probe
from benchmark.attacks.settings import VTSettings


class VarianceTuning:
    """VT gradient transform. Args: settings (VTSettings: vt_samples N >= 1, vt_beta > 0), base (unused)."""

    order = -1  # before TI and momentum

    def __init__(self, settings: VTSettings, base=None) -> None:
        self.samples, self.beta = settings.vt_samples, settings.vt_beta

    def init(self, x: Tensor) -> Tensor:
        return torch.zeros_like(x)

    def __call__(self, grad: Tensor, state: Tensor, probe: Probe) -> tuple[Tensor, Tensor]:
        radius = self.beta * probe.eps
        centre = probe.point if probe.iterate is None else probe.iterate
        shape = tuple(centre.shape[1:])
        total = torch.zeros_like(grad)
        for _ in range(self.samples):
            neighbour = centre + radius * (2 * probe.rng.uniform(shape) - 1)
            total = total + probe.gradient(neighbour)
        return grad + state, total / self.samples - grad

    def lookahead(self, state: Tensor) -> None:
        return None
