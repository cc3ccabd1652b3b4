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

from dataclasses import dataclass

import torch
from torch import Tensor

from benchmark.attacks.entries import ModifierEntry, part
from benchmark.attacks.parts import Probe
from benchmark.attacks.settings import Flat, count, positive


@dataclass(frozen=True)
class VTSettings(Flat):
    """Variance tuning (arXiv:2103.15571).

    Args:
        vt_samples: neighbours N >= 1 per step (default 20).
        vt_beta: neighbourhood radius as a multiple of eps, > 0 (default 1.5).
    """

    vt_samples: int = 20
    vt_beta: float = 1.5

    def __post_init__(self) -> None:
        count("vt_samples", self.vt_samples)
        object.__setattr__(self, "vt_beta", positive("vt_beta", self.vt_beta))


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


# Revision 2 with NI: the neighbours are drawn around x^t, not around NI's look-ahead point.
METHODS = (ModifierEntry(
    "vt", VTSettings, part(VarianceTuning), "grad", copy_fields=("vt_samples",),
    paper="Enhancing the Transferability of Adversarial Attacks through Variance Tuning, Wang, He, CVPR 2021, "
          "arXiv:2103.15571",
    revision=lambda settings, names: 2 if "ni" in names else 1,
),)
