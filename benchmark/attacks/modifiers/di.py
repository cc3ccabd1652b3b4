"""DI: diverse inputs, a random nearest resize and zero padding of the query point, per image.

Paper: "Improving Transferability of Adversarial Examples with Input Diversity", Xie et al.,
CVPR 2019, arXiv:1803.06978.

For each image, with probability ``diversity_prob``: draw h' in [lo_H, hi_H] and w' in [lo_W, hi_W]
(lo = min(H, floor(rH)), hi = max(H, floor(rH)), drawn independently), resize with nearest
interpolation, place at a random offset on a zero (hi_H, hi_W) canvas. The inverse ``back`` crops each
placed region from the canvas logits and resizes it bilinearly (align_corners=False) to (H, W), so the
loss compares logits with the untransformed labels of the same content. Transformed and untransformed
images are two sub-batches (at most two forward passes per step).

Draw order per image (from its generator): apply?, h', w', top, left -- all five always drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmark.attacks.entries import ModifierEntry
from benchmark.attacks.parts import View, identity_view
from benchmark.attacks.rng import PerImageRNG
from benchmark.attacks.settings import Flat, fail, real, unit_interval


@dataclass(frozen=True)
class DISettings(Flat):
    """Diverse inputs: random nearest resize and zero padding of the query point.

    Paper: "Improving Transferability of Adversarial Examples with Input Diversity", Xie et al.,
    CVPR 2019, arXiv:1803.06978.

    Args:
        resize_rate: canvas size factor r > 0, r != 1 (default 1.1; r < 1 shrinks and pads).
        diversity_prob: per-image probability of transforming, in [0, 1] (default 0.5).
    """

    resize_rate: float = 1.1
    diversity_prob: float = 0.5

    def __post_init__(self) -> None:
        rate = real("resize_rate", self.resize_rate)
        if rate <= 0 or rate == 1:
            fail("resize_rate", self.resize_rate, "must be > 0 and != 1")
        object.__setattr__(self, "resize_rate", rate)
        object.__setattr__(self, "diversity_prob", unit_interval("diversity_prob", self.diversity_prob))


def pick(u: float, low: int, high: int) -> int:
    """An integer uniformly in {low, ..., high} from u in [0, 1)."""
    return min(low + math.floor(u * (high - low + 1)), high)


class DiverseInputs:
    """DI input transform.

    Args:
        settings: DISettings (resize_rate r > 0, r != 1; diversity_prob in [0, 1]).

    Shapes:
        x (N, C, H, W) -> one View with sub-batches [(N_plain, C, H, W), (N_di, C, hi_H, hi_W)]; ``back`` maps their
        logits [(N_plain, K, H, W), (N_di, K, hi_H, hi_W)] to (N, K, H, W) in batch order.
    """

    def __init__(self, settings: DISettings) -> None:
        self.resize_rate = settings.resize_rate
        self.diversity_prob = settings.diversity_prob

    def __call__(self, x: Tensor, rng: PerImageRNG) -> list[View]:
        n, _, h, w = x.shape
        sh, sw = math.floor(self.resize_rate * h), math.floor(self.resize_rate * w)
        lo_h, hi_h, lo_w, hi_w = min(h, sh), max(h, sh), min(w, sw), max(w, sw)
        plain, placed = [], []  # placed: (index, top, left, h', w')
        for i, (u_apply, u_h, u_w, u_top, u_left) in enumerate(rng.uniform_host((5,))):
            new_h, new_w = pick(u_h, lo_h, hi_h), pick(u_w, lo_w, hi_w)
            top, left = pick(u_top, 0, hi_h - new_h), pick(u_left, 0, hi_w - new_w)
            if u_apply < self.diversity_prob:
                placed.append((i, top, left, new_h, new_w))
            else:
                plain.append(i)
        if not placed:
            return [identity_view(x)]
        canvas = torch.stack([
            F.pad(
                F.interpolate(x[i : i + 1], size=(nh, nw), mode="nearest"),
                (left, hi_w - nw - left, top, hi_h - nh - top),
            )[0]
            for i, top, left, nh, nw in placed
        ])
        inputs = ([x[plain]] if plain else []) + [canvas]
        order = plain + [i for i, *_ in placed]
        inverse = [0] * n
        for pos, i in enumerate(order):
            inverse[i] = pos

        def back(outs: list[Tensor]) -> Tensor:
            canvas_logits = outs[-1]
            restored = torch.cat([
                F.interpolate(
                    canvas_logits[j : j + 1, :, top : top + nh, left : left + nw],
                    size=(h, w), mode="bilinear", align_corners=False,
                )
                for j, (_, top, left, nh, nw) in enumerate(placed)
            ])
            merged = torch.cat([outs[0], restored]) if plain else restored
            return merged[inverse]

        return [View(inputs, back)]


METHODS = (ModifierEntry(
    "di", DISettings, lambda m, b: DiverseInputs(m), "geometry",
    paper="Improving Transferability of Adversarial Examples with Input Diversity, Xie et al., CVPR 2019, "
          "arXiv:1803.06978",
),)
