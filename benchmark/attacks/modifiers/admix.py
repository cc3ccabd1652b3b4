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
from dataclasses import dataclass

import torch
from torch import Tensor

from benchmark.attacks.entries import ModifierEntry, part
from benchmark.attacks.rng import PerImageRNG
from benchmark.attacks.settings import Flat, choice, count, fail, real


@dataclass(frozen=True)
class AdmixSettings(Flat):
    """Admix (arXiv:2102.00436).

    Args:
        admix_copies: scale copies m1 >= 1 (default 5).
        admix_mixes: mixed images m2 >= 1 (default 3).
        admix_strength: eta >= 0, unitless (default 0.2).
        admix_source: "rolled" (the image itself, shifted; default) | "batch" (another image).
    """

    admix_copies: int = 5
    admix_mixes: int = 3
    admix_strength: float = 0.2
    admix_source: str = "rolled"

    def __post_init__(self) -> None:
        count("admix_copies", self.admix_copies)
        count("admix_mixes", self.admix_mixes)
        strength = real("admix_strength", self.admix_strength)
        if strength < 0:
            fail("admix_strength", self.admix_strength, "must be >= 0")
        object.__setattr__(self, "admix_strength", strength)
        choice("admix_source", self.admix_source, ("rolled", "batch"))


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


METHODS = (ModifierEntry(
    "admix", AdmixSettings, part(Admix), "pixel", copy_fields=("admix_copies", "admix_mixes"),
    paper="Admix: Enhancing the Transferability of Adversarial Attacks, Wang et al., ICCV 2021, arXiv:2102.00436",
),)
