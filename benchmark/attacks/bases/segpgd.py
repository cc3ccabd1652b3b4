"""SegPGD pixel loss: CE re-weighted between still-correct and already-fooled pixels.

Paper: "SegPGD: An Effective and Efficient Adversarial Attack for Evaluating and Boosting
Segmentation Robustness", Gu, Zhao, Tresp, Torr, ECCV 2022, arXiv:2207.12391.

    P_T = {i valid : argmax logits_i = y_i},  P_F = valid \\ P_T
    l_i = (1 - lambda_t) L_i on P_T,  lambda_t L_i on P_F,  lambda_t = (t + lambda_offset) / (2 T)

The weights are detached; gradients flow through L_i only. lambda_offset = 0 is the paper's
(t - 1) / (2T) with a 1-based t.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import Tensor

from benchmark.attacks.bases.pgd import PGD_DEFAULTS
from benchmark.attacks.entries import AttackEntry
from benchmark.attacks.losses.ce import correct_mask, pixel_ce
from benchmark.attacks.parts import LossContext
from benchmark.attacks.settings import IterativeSettings, fail, integer


@dataclass(frozen=True)
class SegPGDSettings(IterativeSettings):
    """SegPGD: PGD whose CE is re-weighted between still-correct and already-fooled pixels.

    Paper: "SegPGD: An Effective and Efficient Adversarial Attack for Evaluating and Boosting
    Segmentation Robustness", Gu et al., ECCV 2022, arXiv:2207.12391.

    Args:
        (all of IterativeSettings; registry defaults eps 8/255, alpha 2/255, steps 20, random start)
        lambda_offset: 0 or 1; fooled-pixel weight (t + offset) / (2 * steps), t from 0 (default 0).

    Shapes:
        images (N, C, H, W) float in [0, 1]; labels (N, H, W) int64; output like images.

    Example:
        >>> attack = build_attack("segpgd", eps=8 / 255, steps=20)
        >>> adv = attack(model, images, labels, generator=torch.Generator().manual_seed(0))
    """

    lambda_offset: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if integer("lambda_offset", self.lambda_offset) not in (0, 1):
            fail("lambda_offset", self.lambda_offset, "must be 0 or 1 (lambda_t must stay in [0, 1/2])")


def ramp(step: int, horizon: int, lambda_offset: int) -> float:
    """lambda = (step + offset) / (2 horizon), in [0, 1/2] for 0 <= step < horizon."""
    return (step + lambda_offset) / (2 * horizon)


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


METHODS = (AttackEntry(
    "segpgd", SegPGDSettings, lambda s: functools.partial(segpgd_loss, lambda_offset=s.lambda_offset),
    paper="SegPGD: An Effective and Efficient Adversarial Attack for Evaluating and Boosting Segmentation "
          "Robustness, Gu et al., ECCV 2022, arXiv:2207.12391",
    defaults={**PGD_DEFAULTS, "steps": 20},
),)
