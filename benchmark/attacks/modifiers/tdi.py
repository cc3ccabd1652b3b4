"""TDI: diverse inputs as TASS's code has them -- shrink, pad back to the image's size, no mapping back.

Paper: "Transferable Attack for Semantic Segmentation", He, Zhang, Yang, He, Barnes, Dai,
arXiv:2307.16572; the authors' code (github.com/anucvers/TASS, ``attacks.py``, ``es_NI_DI_TI``, its
inner ``DI``). A variant of DI (Xie et al., arXiv:1803.06978; ``di`` here).

Per image and step, with probability ``tdi_prob`` (theirs: ``c <= 0.7``, c ~ U[0, 1)):

    h' ~ U{H - k, ..., H - 1},  w' ~ U{W - k, ..., W - 1}          k = tdi_shrink (theirs: 30)
    top ~ U{0, ..., H - h' - 1},  left ~ U{0, ..., W - w' - 1}      (numpy's randint excludes its end)
    canvas = zero padding of nearest-resize(x, (h', w')) back to (H, W)

The canvas has the image's size, and its logits are compared with the untransformed labels as they
are (``back`` is the identity), as the authors' loss ``CrossEntropyLoss(ignore_index=255)(logits,
labels)`` does: the labels are misaligned with the shrunk content by up to k pixels and the padding
carries labels too (pitfalls §8). ``di`` maps the logits back instead. Transformed and untransformed
images share one forward pass.

Where it differs from the authors' code:
- draws are per image, so an image's result does not depend on its batch (theirs: one draw for the
  whole batch; the same at batch size 1);
- h' and w' are at least 1, so images of k pixels or less work (their randint fails there);
- the padding is 0 in our [0, 1] pixel space (black). Their models take mean-subtracted input, so
  their zeros are the dataset's mean colour; attack parts never see a model's normalisation.

Draw order per image (from its generator), all five always drawn, in the authors' order:
h', w', top, left, apply?
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmark.attacks.entries import ModifierEntry, part
from benchmark.attacks.modifiers.di import pick
from benchmark.attacks.parts import View, identity_view
from benchmark.attacks.rng import PerImageRNG
from benchmark.attacks.settings import Flat, count, unit_interval


@dataclass(frozen=True)
class TDISettings(Flat):
    """TASS's diverse inputs: shrink by up to ``tdi_shrink`` pixels, pad back, no mapping back.

    Paper: "Transferable Attack for Semantic Segmentation", He et al., arXiv:2307.16572 (the
    authors' code, ``attacks.py``, ``es_NI_DI_TI``); a variant of DI (arXiv:1803.06978).

    Args:
        tdi_shrink: k >= 1, pixels; h' ~ U{H - k, ..., H - 1} (at least 1), likewise w' (default 30).
        tdi_prob: per-image probability of transforming, in [0, 1] (default 0.7).
    """

    tdi_shrink: int = 30
    tdi_prob: float = 0.7

    def __post_init__(self) -> None:
        count("tdi_shrink", self.tdi_shrink)
        object.__setattr__(self, "tdi_prob", unit_interval("tdi_prob", self.tdi_prob))


def shrink_range(size: int, shrink: int) -> tuple[int, int]:
    """(lowest, highest) shrunk size: [size - shrink, size - 1], at least 1 (size 1 stays 1)."""
    low = max(1, size - shrink)
    return low, max(low, size - 1)


def shrink_and_pad(x: Tensor, new_h: int, new_w: int, top: int, left: int) -> Tensor:
    """(n, C, H, W) -> nearest resize to (new_h, new_w), zero padded back to (H, W) at (top, left)."""
    h, w = x.shape[-2:]
    small = F.interpolate(x, size=(new_h, new_w), mode="nearest")
    return F.pad(small, (left, w - new_w - left, top, h - new_h - top))


class TASSDiverseInputs:
    """TDI geometry transform.

    Args:
        settings: TDISettings (tdi_shrink k in pixels; tdi_prob in [0, 1]).
        base: the base attack's settings (unused).

    Shapes:
        x (N, C, H, W) -> one View with one sub-batch (N, C, H, W); ``back`` returns its logits as they are.
    """

    def __init__(self, settings: TDISettings, base=None) -> None:
        self.shrink, self.prob = settings.tdi_shrink, settings.tdi_prob

    def draw(self, rng: PerImageRNG, h: int, w: int) -> list[tuple[bool, int, int, int, int]]:
        """Per image: (apply, h', w', top, left)."""
        lo_h, hi_h = shrink_range(h, self.shrink)
        lo_w, hi_w = shrink_range(w, self.shrink)
        draws = []
        for u_h, u_w, u_top, u_left, u_apply in rng.uniform_host((5,)):
            new_h, new_w = pick(u_h, lo_h, hi_h), pick(u_w, lo_w, hi_w)
            top = pick(u_top, 0, max(h - new_h - 1, 0))
            left = pick(u_left, 0, max(w - new_w - 1, 0))
            draws.append((u_apply < self.prob, new_h, new_w, top, left))
        return draws

    def __call__(self, x: Tensor, rng: PerImageRNG) -> list[View]:
        h, w = x.shape[-2:]
        draws = self.draw(rng, h, w)
        if not any(apply for apply, *_ in draws):
            return [identity_view(x)]
        canvas = torch.cat([
            shrink_and_pad(x[i : i + 1], new_h, new_w, top, left) if apply else x[i : i + 1]
            for i, (apply, new_h, new_w, top, left) in enumerate(draws)
        ])
        return [View([canvas], lambda outs: outs[0])]


METHODS = (ModifierEntry(
    "tdi", TDISettings, part(TASSDiverseInputs), "geometry",
    paper="Transferable Attack for Semantic Segmentation, He et al., arXiv:2307.16572 (its diverse inputs)",
),)
