"""SI: scale invariance, the gradient averaged over copies of the image scaled in value.

Paper: "Nesterov Accelerated Gradient and Scale Invariance for Adversarial Attacks", Lin, Song, He,
Wang, Hopcroft, ICLR 2020, arXiv:1908.06281 (SI-NI-FGSM is ``bim+ni+si``).

    copies S_i(x) = x / 2^i, i = 0, ..., m - 1, each with weight 1 / m

The copies keep the geometry, so the labels stay aligned. m forward and backward passes per step.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from benchmark.attacks.entries import ModifierEntry, part
from benchmark.attacks.rng import PerImageRNG
from benchmark.attacks.settings import Flat, count


@dataclass(frozen=True)
class SISettings(Flat):
    """Scale invariance (arXiv:1908.06281). Args: scale_copies m >= 1, copies x / 2^i (default 5)."""

    scale_copies: int = 5

    def __post_init__(self) -> None:
        count("scale_copies", self.scale_copies)


class ScaleInvariance:
    """SI pixel transform. Args: settings (SISettings: scale_copies m >= 1), base (unused)."""

    def __init__(self, settings: SISettings, base=None) -> None:
        self.copies = settings.scale_copies

    def __call__(self, x: Tensor, rng: PerImageRNG) -> list[tuple[Tensor, float]]:
        return [(x if i == 0 else x / 2**i, 1.0 / self.copies) for i in range(self.copies)]


METHODS = (ModifierEntry(
    "si", SISettings, part(ScaleInvariance), "pixel", copy_fields=("scale_copies",),
    paper="Nesterov Accelerated Gradient and Scale Invariance for Adversarial Attacks, Lin et al., ICLR 2020, "
          "arXiv:1908.06281",
),)
