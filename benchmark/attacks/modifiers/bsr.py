"""BSR: block shuffle and rotation, the gradient averaged over copies with shuffled, rotated blocks.

Paper: "Boosting Adversarial Transferability by Block Shuffle and Rotation", Wang, Zhang, Yin, Jia,
Zhu, Lin, CVPR 2024, arXiv:2308.10299.

Per copy and image: cut the height at n - 1 random rows into n strips and shuffle the strips; cut
each strip's width at n - 1 random columns into n pieces and shuffle them; rotate each piece about its
centre by theta ~ U[-tau, tau] (bilinear, zeros outside). The copy has the image's size.

For segmentation the geometry is mapped back to the labels: ``back`` takes each piece's logits from
its shuffled place, rotates them by -theta and puts them at the piece's original place, so they align
with the untransformed labels; the view's coverage excludes the pixels whose rotated-back position
falls outside the piece (the corners a rotation cuts off), so they carry no loss. Cut positions that
coincide merge two strips (or pieces). Copies have weight 1 / copies; one forward and backward pass
of the batch per copy.

Draw order per image and copy (all always drawn): n - 1 row cuts, n strip keys, then per strip
n - 1 column cuts, n piece keys, n angles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmark.attacks.entries import ModifierEntry, part
from benchmark.attacks.parts import View
from benchmark.attacks.rng import PerImageRNG
from benchmark.attacks.settings import Flat, count, fail, real


@dataclass(frozen=True)
class BSRSettings(Flat):
    """Block shuffle and rotation (arXiv:2308.10299).

    Args:
        bsr_blocks: n >= 1, an n x n grid of blocks (default 2).
        bsr_copies: copies >= 1 (default 20).
        bsr_angle: tau, the largest rotation in degrees, in [0, 180] (default 24).
    """

    bsr_blocks: int = 2
    bsr_copies: int = 20
    bsr_angle: float = 24.0

    def __post_init__(self) -> None:
        count("bsr_blocks", self.bsr_blocks)
        count("bsr_copies", self.bsr_copies)
        angle = real("bsr_angle", self.bsr_angle)
        if not 0 <= angle <= 180:
            fail("bsr_angle", self.bsr_angle, "must lie in [0, 180] degrees")
        object.__setattr__(self, "bsr_angle", angle)


def rotate(x: Tensor, angle: float) -> Tensor:
    """(N, C, h, w) rotated about the centre by ``angle`` radians in pixel space; zeros outside."""
    n, _, h, w = x.shape
    if angle == 0.0:
        return x
    ys = torch.arange(h, device=x.device, dtype=x.dtype) + 0.5 - h / 2
    xs = torch.arange(w, device=x.device, dtype=x.dtype) + 0.5 - w / 2
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    c, s = math.cos(angle), math.sin(angle)
    src_x, src_y = c * xx + s * yy, -s * xx + c * yy
    grid = torch.stack([src_x / (w / 2), src_y / (h / 2)], dim=-1).expand(n, h, w, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _cuts(us: list[float], length: int) -> list[tuple[int, int]]:
    """Segments [start, end) of 0..length cut at the drawn positions (duplicates merge)."""
    inner = sorted({1 + min(math.floor(u * (length - 1)), length - 2) for u in us}) if length > 1 else []
    bounds = [0, *inner, length]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def _order(keys: list[float], count: int) -> list[int]:
    return sorted(range(count), key=lambda i: (keys[i], i))


class BlockShuffleRotation:
    """BSR geometry transform. Args: settings (BSRSettings), base (unused).

    Shapes:
        x (N, C, H, W) -> ``bsr_copies`` Views of one (N, C, H, W) sub-batch each; ``back`` maps
        (N, K, H, W) logits to (N, K, H, W) aligned with the labels, with an (N, H, W) coverage.
    """

    def __init__(self, settings: BSRSettings, base=None) -> None:
        self.blocks, self.copies = settings.bsr_blocks, settings.bsr_copies
        self.max_angle = math.radians(settings.bsr_angle)

    def _layout(self, draws: list[float], h: int, w: int) -> list[tuple]:
        """[(src_top, src_left, dst_top, dst_left, ph, pw, angle)] of one image and copy."""
        n, pos = self.blocks, 0

        def take(k: int) -> list[float]:
            nonlocal pos
            out = draws[pos:pos + k]
            pos += k
            return out

        strips = _cuts(take(n - 1), h)
        strip_keys = take(n)
        per_strip = []
        for _ in range(n):
            per_strip.append((take(n - 1), take(n), take(n)))
        pieces, dst_top = [], 0
        for rank, si in enumerate(_order(strip_keys[:len(strips)], len(strips))):
            top, bottom = strips[si]
            col_cuts, piece_keys, angles = per_strip[rank]
            cols = _cuts(col_cuts, w)
            dst_left = 0
            for pi in _order(piece_keys[:len(cols)], len(cols)):
                left, right = cols[pi]
                angle = (2 * angles[pi] - 1) * self.max_angle
                pieces.append((top, left, dst_top, dst_left, bottom - top, right - left, angle))
                dst_left += right - left
            dst_top += bottom - top
        return pieces

    def _draw_count(self) -> int:
        n = self.blocks
        return (n - 1) + n + n * ((n - 1) + n + n)

    def __call__(self, x: Tensor, rng: PerImageRNG) -> list[View]:
        n_img, _, h, w = x.shape
        views = []
        for _ in range(self.copies):
            layouts = [self._layout(d, h, w) for d in rng.uniform_host((self._draw_count(),))]
            images = []
            for i, layout in enumerate(layouts):
                out = torch.zeros_like(x[i])
                for top, left, dt, dl, ph, pw, angle in layout:
                    piece = x[i : i + 1, :, top : top + ph, left : left + pw]
                    out = _place(out, rotate(piece, angle)[0], dt, dl)
                images.append(out)
            views.append(self._view(torch.stack(images), layouts, h, w))
        return views

    @staticmethod
    def _view(shuffled: Tensor, layouts: list, h: int, w: int) -> View:
        coverage = torch.zeros(len(layouts), h, w, dtype=torch.bool, device=shuffled.device)
        for i, layout in enumerate(layouts):
            for top, left, _, _, ph, pw, angle in layout:
                ones = torch.ones(1, 1, ph, pw, device=shuffled.device, dtype=shuffled.dtype)
                coverage[i, top : top + ph, left : left + pw] = rotate(ones, -angle)[0, 0] > 1 - 1e-4

        def back(outs: list[Tensor]) -> Tensor:
            logits = outs[0]
            restored = []
            for i, layout in enumerate(layouts):
                out = torch.zeros_like(logits[i])
                for top, left, dt, dl, ph, pw, angle in layout:
                    piece = logits[i : i + 1, :, dt : dt + ph, dl : dl + pw]
                    out = _place(out, rotate(piece, -angle)[0], top, left)
                restored.append(out)
            return torch.stack(restored)

        return View([shuffled], back, coverage)


def _place(canvas: Tensor, piece: Tensor, top: int, left: int) -> Tensor:
    """``canvas`` (C, H, W) with ``piece`` written at (top, left), out of place (autograd-safe)."""
    _, h, w = canvas.shape
    ph, pw = piece.shape[-2:]
    return canvas + F.pad(piece, (left, w - left - pw, top, h - top - ph))


METHODS = (ModifierEntry(
    "bsr", BSRSettings, part(BlockShuffleRotation), "geometry", copy_fields=("bsr_copies",),
    paper="Boosting Adversarial Transferability by Block Shuffle and Rotation, Wang et al., CVPR 2024, "
          "arXiv:2308.10299",
),)
