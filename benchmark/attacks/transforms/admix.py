"""Admix: the gradient averaged over scaled copies of the image with a little of another image mixed in.

Paper: "Admix: Enhancing the Transferability of Adversarial Attacks", Wang, He, Wang, He,
ICCV 2021, arXiv:2102.00436.

    copies gamma_i (x + eta x'_j),  gamma_i = 1 / 2^i (i < m1),  j < m2,  weight 1 / (m1 m2)

x'_j is detached (only x is attacked) and the labels stay those of x. The paper draws x' from images
of other classes; per-image results must not depend on the batch (attacks.md 4.5), so the default
``admix_source="rolled"`` takes x' as the image itself circularly shifted by a random offset
(dy, dx) from the image's generator, content of the same image at other places. ``"batch"`` takes
x' from another image of the batch (the paper's reading; the result then depends on the batch, and
a batch of one falls back to "rolled"). m1 * m2 forward and backward passes per step.

Draw order per image and mix j: dy, dx, partner -- always drawn.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from benchmark.attacks.rng import PerImageRNG
from benchmark.attacks.settings import AdmixSettings


class Admix:
    """Admix pixel transform. Args: settings (AdmixSettings), base (unused)."""

    def __init__(self, settings: AdmixSettings, base=None) -> None:
        self.copies, self.mixes = settings.admix_copies, settings.admix_mixes
        self.strength, self.source = settings.admix_strength, settings.admix_source

    def _partners(self, x: Tensor, rng: PerImageRNG) -> list[Tensor]:
        n, _, h, w = x.shape
        draws = rng.uniform_host((self.mixes, 3))
        partners = []
        for j in range(self.mixes):
            mixed = []
            for i in range(n):
                u_dy, u_dx, u_other = draws[i][j]
                if self.source == "batch" and n > 1:
                    other = min(math.floor(u_other * (n - 1)), n - 2)
                    mixed.append(x[other + (other >= i)])
                else:
                    shift = (min(math.floor(u_dy * h), h - 1), min(math.floor(u_dx * w), w - 1))
                    mixed.append(torch.roll(x[i], shifts=shift, dims=(1, 2)))
            partners.append(torch.stack(mixed).detach())
        return partners

    def __call__(self, x: Tensor, rng: PerImageRNG) -> list[tuple[Tensor, float]]:
        weight = 1.0 / (self.copies * self.mixes)
        return [((x + self.strength * other) / 2**i, weight)
                for other in self._partners(x, rng) for i in range(self.copies)]
