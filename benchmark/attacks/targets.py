"""Target label maps of targeted attacks (DAG, ``+targeted``), drawn per image from its generator.

Rules (K classes, y the labels, ignored pixels keep ``ignore_index``):

- ``"permutation"``: a random cyclic permutation pi of {0, ..., K-1} per image (a random order
  sigma, then pi(sigma_i) = sigma_{(i+1) mod K}), target_i = pi(y_i); a K-cycle has no fixed point,
  so every valid pixel's target differs from its label (K >= 2). One draw of K uniforms per image.
- ``"class"``: one class c everywhere, target_i = c (pixels already labelled c have target = label).
"""

from __future__ import annotations

import torch
from torch import Tensor

from benchmark.attacks.rng import PerImageRNG

TARGET_RULES = ("permutation", "class")


def target_map(labels: Tensor, valid: Tensor, num_classes: int, rule: str, target_class: int,
               rng: PerImageRNG, ignore_index: int) -> Tensor:
    """(N, H, W) int64 targets for labels (N, H, W) under ``rule``."""
    if rule == "class":
        if not 0 <= target_class < num_classes:
            raise ValueError(f"target_class={target_class}: the source has {num_classes} classes")
        out = torch.full_like(labels, target_class)
    else:
        if num_classes < 2:
            raise ValueError("a permutation target needs at least two classes")
        order = rng.uniform((num_classes,)).argsort(dim=1)  # (N, K): sigma
        successor = order.roll(-1, dims=1)
        perm = torch.empty_like(order).scatter_(1, order, successor)  # perm[n, sigma_i] = sigma_{i+1}
        safe = torch.where(valid, labels, 0)
        out = perm.gather(1, safe.flatten(1)).view_as(labels)
    return torch.where(valid, out, torch.full_like(labels, ignore_index))
