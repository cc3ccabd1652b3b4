"""SegPGD pixel loss: CE re-weighted between still-correct and already-fooled pixels.

Paper: "SegPGD: An Effective and Efficient Adversarial Attack for Evaluating and Boosting
Segmentation Robustness", Gu, Zhao, Tresp, Torr, ECCV 2022, arXiv:2207.12391.

    P_T = {i valid : argmax logits_i = y_i},  P_F = valid \\ P_T
    l_i = (1 - lambda_t) L_i on P_T,  lambda_t L_i on P_F,  lambda_t = (t + lambda_offset) / (2 T)

The weights are detached; gradients flow through L_i only. lambda_offset = 0 is the paper's
(t - 1) / (2T) with a 1-based t.
"""

from __future__ import annotations

import torch
from torch import Tensor

from benchmark.attacks.losses.ce import pixel_ce
from benchmark.attacks.parts import LossContext


def ramp(step: int, horizon: int, lambda_offset: int) -> float:
    """lambda = (step + offset) / (2 horizon), in [0, 1/2] for 0 <= step < horizon."""
    return (step + lambda_offset) / (2 * horizon)


def correct_mask(logits: Tensor, labels: Tensor, valid: Tensor) -> Tensor:
    """(N, H, W) bool: valid pixels predicted as their label (no grad).

    "Predicted" means the label's logit is the maximum, so exact ties count as correct. This avoids
    a class-dim argmax, which is several times slower than the whole CE on CPU.
    """
    with torch.no_grad():
        logits = logits.detach()
        label_logit = logits.gather(1, torch.where(valid, labels, 0).unsqueeze(1)).squeeze(1)
        return valid & (label_logit >= logits.amax(dim=1))


def branch_weights(mask: Tensor, lam: float) -> Tensor:
    """(N, H, W) float32 weights: 1 - lam where ``mask``, lam elsewhere (shared with TranSegPGD)."""
    return torch.where(mask, 1.0 - lam, lam)


def segpgd_weights(logits: Tensor, labels: Tensor, valid: Tensor, lam: float) -> Tensor:
    """(N, H, W) float32 detached weights: 1 - lam on still-correct pixels, lam elsewhere."""
    return branch_weights(correct_mask(logits, labels, valid), lam)


def segpgd_loss(logits: Tensor, labels: Tensor, ctx: LossContext, lambda_offset: int = 0) -> Tensor:
    """SegPGD pixel loss, (N, K, H, W), (N, H, W) -> (N, H, W), 0 at ignored pixels."""
    ce = pixel_ce(logits, labels, ctx.valid)
    return segpgd_weights(logits, labels, ctx.valid, ramp(ctx.step, ctx.steps, lambda_offset)) * ce
