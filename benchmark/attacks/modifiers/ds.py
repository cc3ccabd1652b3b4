"""DS: dynamic scaling, a random rescale of each image before the source forward.

Paper: "Adversarial Examples on Segmentation Models Can be Easy to Transfer", Gu, Zhao, Tresp, Torr,
arXiv:2111.11368. The abstract and public descriptions state the method (rescale the input by a
random factor at each attack iteration, so the perturbation works across the object scales that
segmentation models recognise at); the scale range and the interpolation were not available, so both
are options: ``scale_min`` / ``scale_max`` (provisional default [0.5, 1.5], recorded in results) and
bilinear resizing both ways. A later search for the full text found only the abstract and the first
lines of the introduction (ar5iv.labs.arxiv.org/html/2111.11368, as stored by our search service) and
no public code (paper lists link "code" to the PDF), so the defaults are still provisional.

Per image and step, with probability ``scale_prob``: s ~ U[scale_min, scale_max] from its generator,
the image is resized bilinearly (align_corners=False) to (round(s H), round(s W)) (at least 1 x 1),
and ``back`` resizes its logits bilinearly to (H, W). Images of equal size share one forward pass;
the FLOPs of a step are on average E[s^2] (13/12 for [0.5, 1.5]) times one plain forward.

Draw order per image: apply?, s -- both always drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmark.attacks.entries import ModifierEntry, part
from benchmark.attacks.parts import View
from benchmark.attacks.rng import PerImageRNG
from benchmark.attacks.settings import Flat, fail, positive, unit_interval


@dataclass(frozen=True)
class DSSettings(Flat):
    """Dynamic scaling: a random bilinear rescale of each image per step (arXiv:2111.11368).

    Args:
        scale_min, scale_max: the factor's range, 0 < min <= max (provisional default [0.5, 1.5]).
        scale_prob: per-image probability of rescaling, in [0, 1] (default 1).
    """

    scale_min: float = 0.5
    scale_max: float = 1.5
    scale_prob: float = 1.0

    def __post_init__(self) -> None:
        low, high = positive("scale_min", self.scale_min), positive("scale_max", self.scale_max)
        if low > high:
            fail("scale_min", self.scale_min, f"must be <= scale_max={high}")
        object.__setattr__(self, "scale_min", low)
        object.__setattr__(self, "scale_max", high)
        object.__setattr__(self, "scale_prob", unit_interval("scale_prob", self.scale_prob))


def resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize (align_corners=False); the identity when the size is unchanged."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class DynamicScaling:
    """DS geometry transform.

    Args:
        settings: DSSettings (scale_min, scale_max: unitless factors > 0; scale_prob in [0, 1]).
        base: the base attack's settings (unused).

    Shapes:
        x (N, C, H, W) -> one View whose sub-batches are the images grouped by their drawn size;
        ``back`` returns (N, K, H, W) in batch order.
    """

    def __init__(self, settings: DSSettings, base=None) -> None:
        self.low, self.high, self.prob = settings.scale_min, settings.scale_max, settings.scale_prob

    def __call__(self, x: Tensor, rng: PerImageRNG) -> list[View]:
        n, _, h, w = x.shape
        groups: dict[tuple[int, int], list[int]] = {}
        for i, (u_apply, u_scale) in enumerate(rng.uniform_host((2,))):
            s = self.low + (self.high - self.low) * u_scale if u_apply < self.prob else 1.0
            size = (max(1, round(s * h)), max(1, round(s * w)))
            groups.setdefault(size, []).append(i)
        sizes, members = list(groups), list(groups.values())
        inputs = [resize(x[idx] if len(idx) < n else x, size) for size, idx in zip(sizes, members)]
        order = [i for idx in members for i in idx]
        inverse = torch.empty(n, dtype=torch.long)
        inverse[torch.tensor(order)] = torch.arange(n)
        inverse = inverse.to(x.device)

        def back(outs: list[Tensor]) -> Tensor:
            merged = torch.cat([resize(out, (h, w)) for out in outs])
            return merged if order == list(range(n)) else merged[inverse]

        return [View(inputs, back)]


METHODS = (ModifierEntry(
    "ds", DSSettings, part(DynamicScaling), "geometry",
    paper="Adversarial Examples on Segmentation Models Can be Easy to Transfer, Gu et al., arXiv:2111.11368 "
          "(provisional defaults)",
),)
