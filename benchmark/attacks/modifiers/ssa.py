"""SSA: spectrum simulation, the gradient averaged over copies with noise and a random spectrum mask.

Paper: "Frequency Domain Model Augmentation for Adversarial Attack", Long, Zhang, Zhang, Zhu, Yu,
Song, ECCV 2022, arXiv:2207.05382.

    copies x_i = IDCT(DCT(x + xi_i) * M_i),  xi_i ~ N(0, sigma^2),  M_i ~ U[1 - rho, 1 + rho],  weight 1 / N

DCT is the orthonormal 2-D DCT-II over (H, W) of each channel, DCT(x) = D_H x D_W^T, so IDCT = its
transpose; without noise and mask the copy equals x up to float rounding. The noise and the mask
are drawn per image, channel and pixel from the image's generator; sigma defaults to eps (the
paper's sigma = 16/255 at eps = 16/255). The copies keep the geometry. N forward and backward passes
per step.

The gradient of a copy is taken with respect to the copy itself, as in the authors' code
(yuyang-long/SSA attack.py and TransferAttack ssm.py differentiate with respect to x_idct): each copy
is the transformed value with an identity Jacobian, so the step averages grad J(x_i) over the
copies, not its pull-back IDCT(M * DCT(grad J(x_i))) through the mask. Draw order per copy: noise,
mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from benchmark.attacks.entries import ModifierEntry, part
from benchmark.attacks.rng import PerImageRNG
from benchmark.attacks.settings import Flat, count, fail, real, unit_interval


@dataclass(frozen=True)
class SSASettings(Flat):
    """Spectrum simulation (arXiv:2207.05382).

    Args:
        ssa_copies: copies N >= 1 (default 20).
        ssa_rho: spectrum mask range rho in (0, 1], M ~ U[1 - rho, 1 + rho] (default 0.5).
        ssa_sigma: noise standard deviation, fraction of the pixel range (None: eps).
    """

    ssa_copies: int = 20
    ssa_rho: float = 0.5
    ssa_sigma: float | None = None

    def __post_init__(self) -> None:
        count("ssa_copies", self.ssa_copies)
        object.__setattr__(self, "ssa_rho", unit_interval("ssa_rho", self.ssa_rho))
        if self.ssa_sigma is not None:
            sigma = real("ssa_sigma", self.ssa_sigma)
            if sigma < 0:
                fail("ssa_sigma", self.ssa_sigma, "must be >= 0")
            object.__setattr__(self, "ssa_sigma", sigma)


def dct_matrix(n: int, device=None, dtype=torch.float32) -> Tensor:
    """(n, n) orthonormal DCT-II matrix D: D[k, i] = s_k cos(pi (2 i + 1) k / (2 n))."""
    i = torch.arange(n, dtype=torch.float64)
    k = i.view(-1, 1)
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d.to(device=device, dtype=dtype)


def dct2(x: Tensor, d_h: Tensor, d_w: Tensor) -> Tensor:
    """2-D DCT over the last two dimensions."""
    return d_h @ x @ d_w.T


def idct2(x: Tensor, d_h: Tensor, d_w: Tensor) -> Tensor:
    """Inverse of :func:`dct2`."""
    return d_h.T @ x @ d_w


class SpectrumSimulation:
    """SSA pixel transform. Args: settings (SSASettings), base (the base settings: eps for sigma)."""

    def __init__(self, settings: SSASettings, base=None) -> None:
        self.copies, self.rho = settings.ssa_copies, settings.ssa_rho
        self.sigma = settings.ssa_sigma if settings.ssa_sigma is not None else base.eps

    def __call__(self, x: Tensor, rng: PerImageRNG) -> list[tuple[Tensor, float]]:
        shape = tuple(x.shape[1:])
        d_h, d_w = dct_matrix(shape[1], x.device, x.dtype), dct_matrix(shape[2], x.device, x.dtype)
        copies = []
        for _ in range(self.copies):
            noise = self.sigma * rng.normal(shape)
            mask = 1 - self.rho + 2 * self.rho * rng.uniform(shape)
            with torch.no_grad():
                spectrum = idct2(dct2(x + noise, d_h, d_w) * mask, d_h, d_w)
            # The copy's value with the gradient passed straight through to x (x - x.detach() is 0).
            copies.append((spectrum + (x - x.detach()), 1.0 / self.copies))
        return copies


# Revision 2: the gradient passes straight through the spectrum transform, as the authors' code.
METHODS = (ModifierEntry(
    "ssa", SSASettings, part(SpectrumSimulation), "pixel", copy_fields=("ssa_copies",),
    paper="Frequency Domain Model Augmentation for Adversarial Attack, Long et al., ECCV 2022, arXiv:2207.05382",
    revision=lambda settings, names: 2,
),)
