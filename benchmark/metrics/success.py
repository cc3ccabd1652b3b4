"""Pixel-level attack success rate on valid pixels.

Two integer counters, summed over batches and ranks:

- ``clean_correct``: valid pixels (label != ``ignore_index``) classified correctly on the clean image;
- ``fooled``: of those, pixels classified wrongly on the adversarial image.

``rate = fooled / clean_correct``. When no valid pixel was correct on clean images the rate is
undefined and ``compute`` returns NaN; result files store it as ``null``. Pixels already wrong on the
clean image never count, whatever the attack does to them.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torchmetrics import Metric


def _labels(preds: Tensor, target: Tensor, what: str) -> Tensor:
    if preds.ndim == target.ndim + 1:
        preds = preds.argmax(dim=1)
    if preds.shape != target.shape:
        raise ValueError(f"{what} must be (N, H, W) labels or (N, K, H, W) logits matching target "
                         f"{tuple(target.shape)}, got {tuple(preds.shape)}")
    return preds


class AttackSuccessRate(Metric):
    """Fraction of clean-correct valid pixels that the adversarial image makes wrong.

    Args:
        ignore_index: label excluded from both counters (default 255).

    Shapes:
        ``update(clean_pred, adv_pred, target)``: predictions as int64 labels (N, H, W) or logits
        (N, K, H, W); ``target`` int64 (N, H, W).

    Example:
        >>> asr = AttackSuccessRate()
        >>> asr.update(clean_logits, adv_logits, labels)
        >>> asr.compute()  # float in [0, 1], NaN if no pixel was correct on clean
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, ignore_index: int = 255, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ignore_index = ignore_index
        self.add_state("clean_correct", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("fooled", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, clean_pred: Tensor, adv_pred: Tensor, target: Tensor) -> None:
        """Count one batch."""
        clean = _labels(clean_pred, target, "clean_pred")
        adv = _labels(adv_pred, target, "adv_pred")
        correct = (target != self.ignore_index) & (clean == target)
        self.clean_correct += correct.sum()
        self.fooled += (correct & (adv != target)).sum()

    def compute(self) -> float:
        """``fooled / clean_correct`` as a Python float; NaN when ``clean_correct`` is 0."""
        first = int(self.clean_correct)
        return int(self.fooled) / first if first > 0 else math.nan
