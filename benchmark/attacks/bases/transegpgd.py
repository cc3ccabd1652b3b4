"""TranSegPGD pixel loss: stage 1 by adversarial property, stage 2 by KL transferability.

Paper: "TranSegPGD: Improving Transferability of Adversarial Examples on Semantic Segmentation",
Jia, Gu, Huang, Qin, Guo, Liu, Cao, arXiv:2312.02207. No official code; the full text was not
available, so every choice below is an option of ``TranSegPGDSettings`` (attacks.md 3.2-3.3).

Stage 1 (t < T1, or per image while some valid pixel is correct under ``stage_switch="all_fooled"``):
    P_T = hard pixels (still correct, or p[y] > 1/2), P_F = the other valid pixels,
    l_i = (1 - gamma_t) L_i on the priority branch, gamma_t L_i on the other one;
    the priority branch is P_T (``stage1_priority="correct"``) or P_F (``"fooled"``).
Stage 2:
    D_i = KL(q_i || p_i(x^t)) (or reversed; q = clean source softmax or the one-hot label),
    P_H = valid pixels on the transferable side of a per-image threshold (mean / median / top-k),
    l_i = (1 - beta_s) obj_i on P_H, beta_s obj_i else; obj = CE, KL or CE + KL.
All partitions and weights are detached. Statistics are per image, over valid pixels only.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from benchmark.attacks.bases.pgd import PGD_DEFAULTS
from benchmark.attacks.bases.segpgd import branch_weights, ramp
from benchmark.attacks.entries import AttackEntry
from benchmark.attacks.losses.ce import (
    ce_from_log_probs,
    correct_mask,
    log_probs,
    safe_labels,
)
from benchmark.attacks.parts import LossContext
from benchmark.attacks.settings import (
    OMIT_DEFAULT,
    IterativeSettings,
    choice,
    fail,
    integer,
    unit_interval,
)


@dataclass(frozen=True)
class TranSegPGDSettings(IterativeSettings):
    """TranSegPGD: two-stage re-weighted PGD (adversarial property, then KL transferability).

    Paper: "TranSegPGD: Improving Transferability of Adversarial Examples on Semantic Segmentation",
    Jia et al., arXiv:2312.02207. The full text was not available; every option below is one row of
    the ambiguity register (attacks.md 3.3) and every default is our interpretation.

    Args:
        (all of IterativeSettings; registry defaults alpha 2/255, steps 20, random start, "uniform")
        stage1_steps: T1, steps of stage 1 in [0, steps]; None means steps // 2 (A3).
        stage_switch: "fixed" (at T1) | "all_fooled" (per image, no valid pixel correct) (A3).
        stage1_split: "correct" (argmax == label) | "confident" (p[label] > 1/2) hard pixels (A1).
        stage1_priority: which stage-1 branch gets the high weight 1 - gamma_t (A17): "correct" (the
            hard pixels of ``stage1_split``, default) | "fooled" (the other valid pixels: the project
            description's "higher weight to misclassified pixels"). Recorded only when "fooled", so
            results and hashes from before the option stay valid.
        stage1_weight / stage2_weight: "segpgd" (linear ramp) | "constant" (gamma / beta) (A2).
        gamma / beta: constant weights in [0, 1/2] of the easy branch (A2).
        lambda_offset: 0 or 1, ramp (t + offset) / (2 * horizon) (A2).
        weight_horizon: "stage" (ramp over the stage's steps) | "total" (over all steps) (A2).
        kl_reference: "clean" (source softmax on clean image) | "label" (one-hot) (A4).
        kl_direction: "clean_adv" KL(ref || adv) | "adv_clean" KL(adv || ref) (A5).
        stage2_split: "mean" | "median" | "topk" per-image threshold on KL (A6).
        topk_fraction: fraction in (0, 1] of valid pixels on the upper side for "topk" (A6).
        transferable_side: "high_kl" | "low_kl" (A7).
        stage2_loss: "ce" | "kl" | "ce_kl" weighted stage-2 objective (A8).

    Shapes:
        images (N, C, H, W) float in [0, 1]; labels (N, H, W) int64; output like images.

    Example:
        >>> attack = build_attack("transegpgd+mi", steps=20, stage2_split="median")
        >>> adv = attack(model, images, labels, generator=torch.Generator().manual_seed(0))
    """

    steps: int = 20
    step_schedule: str = "uniform"
    stage1_steps: int | None = None
    stage_switch: str = "fixed"
    stage1_split: str = "correct"
    stage1_priority: str = field(default="correct", metadata={OMIT_DEFAULT: True})
    stage1_weight: str = "segpgd"
    stage2_weight: str = "segpgd"
    gamma: float = 0.1
    beta: float = 0.1
    lambda_offset: int = 0
    weight_horizon: str = "stage"
    kl_reference: str = "clean"
    kl_direction: str = "clean_adv"
    stage2_split: str = "mean"
    topk_fraction: float = 0.5
    transferable_side: str = "high_kl"
    stage2_loss: str = "ce"

    def __post_init__(self) -> None:
        super().__post_init__()
        t1 = self.steps // 2 if self.stage1_steps is None else integer("stage1_steps", self.stage1_steps)
        if not 0 <= t1 <= self.steps:
            fail("stage1_steps", self.stage1_steps, f"must lie in [0, steps={self.steps}]")
        object.__setattr__(self, "stage1_steps", t1)
        choice("stage_switch", self.stage_switch, ("fixed", "all_fooled"))
        choice("stage1_split", self.stage1_split, ("correct", "confident"))
        choice("stage1_priority", self.stage1_priority, ("correct", "fooled"))
        choice("stage1_weight", self.stage1_weight, ("segpgd", "constant"))
        choice("stage2_weight", self.stage2_weight, ("segpgd", "constant"))
        object.__setattr__(self, "gamma", unit_interval("gamma", self.gamma, high=0.5))
        object.__setattr__(self, "beta", unit_interval("beta", self.beta, high=0.5))
        if integer("lambda_offset", self.lambda_offset) not in (0, 1):
            fail("lambda_offset", self.lambda_offset, "must be 0 or 1 (ramp weights must stay in [0, 1/2])")
        choice("weight_horizon", self.weight_horizon, ("stage", "total"))
        choice("kl_reference", self.kl_reference, ("clean", "label"))
        choice("kl_direction", self.kl_direction, ("clean_adv", "adv_clean"))
        choice("stage2_split", self.stage2_split, ("mean", "median", "topk"))
        object.__setattr__(
            self, "topk_fraction", unit_interval("topk_fraction", self.topk_fraction, low_open=True)
        )
        choice("transferable_side", self.transferable_side, ("high_kl", "low_kl"))
        choice("stage2_loss", self.stage2_loss, ("ce", "kl", "ce_kl"))
        # Option interactions (attacks.md 3.3).
        if self.stage_switch == "all_fooled" and self.weight_horizon != "total":
            fail("weight_horizon", self.weight_horizon, 'stage_switch="all_fooled" requires "total"')
        if self.kl_reference == "label" and self.kl_direction != "clean_adv":
            fail(
                "kl_direction", self.kl_direction,
                'kl_reference="label" requires "clean_adv" (KL(p || one-hot) is infinite)',
            )


def stage1_hard_mask(logits: Tensor, labels: Tensor, valid: Tensor, split: str) -> Tensor:
    """P_T, (N, H, W) bool: "correct" = argmax equals label; "confident" = p[label] > 1/2."""
    if split == "correct":
        return correct_mask(logits, labels, valid)
    with torch.no_grad():
        p = logits.detach().float().softmax(dim=1)
        p_true = p.gather(1, safe_labels(labels, valid).unsqueeze(1)).squeeze(1)
        return valid & (p_true > 0.5)


def pixel_kl(clean_logits: Tensor, logits: Tensor, direction: str) -> Tensor:
    """(N, H, W) KL between clean and current softmax per pixel; 0 * log 0 counts as 0.

    "clean_adv": sum_k q_k (log q_k - log p_k); "adv_clean": sum_k p_k (log p_k - log q_k).
    """
    return kl_from_log_probs(log_probs(clean_logits), log_probs(logits), direction)


def kl_from_log_probs(log_q: Tensor, log_p: Tensor, direction: str) -> Tensor:
    """``pixel_kl`` from log-probabilities (clean ``log_q``, current ``log_p``), (N, K, H, W) -> (N, H, W)."""
    if direction == "clean_adv":
        a, log_a, log_b = log_q.exp(), log_q, log_p
    else:
        a, log_a, log_b = log_p.exp(), log_p, log_q
    return torch.where(a > 0, a * (log_a - log_b), 0.0).sum(dim=1)


def upper_set(d: Tensor, valid: Tensor, split: str, topk_fraction: float) -> Tensor:
    """(N, H, W) bool: valid pixels above the per-image threshold of ``d`` (no grad).

    "mean": d > mean over valid pixels; "median": d > lower median over valid pixels; "topk": exactly
    ceil(f |V_n|) valid pixels with the largest d, ties broken by lower flat pixel index.
    """
    n = d.shape[0]
    flat_d, flat_v = d.detach().reshape(n, -1), valid.reshape(n, -1)
    count = flat_v.sum(dim=1)
    if split == "mean":
        tau = torch.where(flat_v, flat_d, torch.zeros_like(flat_d)).sum(dim=1) / count.clamp(min=1)
        upper = flat_d > tau[:, None]
    elif split == "median":
        ordered = torch.where(flat_v, flat_d, torch.full_like(flat_d, math.inf)).sort(dim=1).values
        mid = ((count - 1) // 2).clamp(min=0)
        upper = flat_d > ordered.gather(1, mid[:, None])
    else:
        keyed = torch.where(flat_v, flat_d, torch.full_like(flat_d, -math.inf))
        order = keyed.sort(dim=1, descending=True, stable=True).indices
        rank = torch.empty_like(order).scatter_(
            1, order, torch.arange(order.shape[1], device=d.device).expand_as(order)
        )
        k = torch.ceil(count.double() * topk_fraction - 1e-9).long()
        upper = rank < k[:, None]
    return (upper & flat_v).reshape(valid.shape)


def _weight(kind: str, constant: float, step: int, horizon: int, offset: int) -> float:
    return constant if kind == "constant" else ramp(step, horizon, offset)


def _stage1(
    logits: Tensor, labels: Tensor, ce: Tensor, log_p: Tensor, ctx: LossContext, s: TranSegPGDSettings
) -> Tensor:
    horizon = ctx.steps if (s.weight_horizon == "total" or s.stage_switch == "all_fooled") else s.stage1_steps
    gamma = _weight(s.stage1_weight, s.gamma, ctx.step, horizon, s.lambda_offset)
    hard = stage1_hard_mask(logits, labels, ctx.valid, s.stage1_split)
    priority = hard if s.stage1_priority == "correct" else ctx.valid & ~hard
    return branch_weights(priority, gamma) * ce


def _stage2(
    logits: Tensor, labels: Tensor, ce: Tensor, log_p: Tensor, ctx: LossContext, s: TranSegPGDSettings
) -> Tensor:
    if s.weight_horizon == "total" or s.stage_switch == "all_fooled":
        step, horizon = ctx.step, ctx.steps
    else:
        step, horizon = ctx.step - s.stage1_steps, ctx.steps - s.stage1_steps
    beta = _weight(s.stage2_weight, s.beta, step, horizon, s.lambda_offset)
    needs_grad = s.stage2_loss != "ce"
    with torch.set_grad_enabled(needs_grad and torch.is_grad_enabled()):
        if s.kl_reference == "label":
            kl = ce  # KL(one-hot || p) = -log p[y] = L_i
        else:
            log_q = ctx.clean_log_probs if ctx.clean_log_probs is not None else log_probs(ctx.clean_logits)
            kl = kl_from_log_probs(log_q, log_p if needs_grad else log_p.detach(), s.kl_direction)
        kl = torch.where(ctx.valid, kl, 0.0)
    upper = upper_set(kl, ctx.valid, s.stage2_split, s.topk_fraction)
    high = upper if s.transferable_side == "high_kl" else ctx.valid & ~upper
    objective = {"ce": ce, "kl": kl, "ce_kl": ce + kl}[s.stage2_loss] if needs_grad else ce
    return branch_weights(high, beta) * objective


def transegpgd_loss(logits: Tensor, labels: Tensor, ctx: LossContext, settings: TranSegPGDSettings) -> Tensor:
    """TranSegPGD pixel loss, (N, K, H, W), (N, H, W) -> (N, H, W), 0 at ignored pixels.

    ``ctx.clean_logits`` must be set when ``settings.kl_reference == "clean"``.
    """
    s = settings
    log_p = log_probs(logits)  # shared by CE and KL
    ce = ce_from_log_probs(log_p, labels, ctx.valid)
    if s.stage_switch == "fixed":  # the same stage for every image; compute only that one
        if ctx.step < s.stage1_steps:
            out = _stage1(logits, labels, ce, log_p, ctx, s)
        else:
            out = _stage2(logits, labels, ce, log_p, ctx, s)
    else:  # per image: stage 2 exactly when no valid pixel is correct at x^t (memoryless)
        in_stage1 = correct_mask(logits, labels, ctx.valid).flatten(1).any(dim=1)
        out = torch.where(
            in_stage1[:, None, None],
            _stage1(logits, labels, ce, log_p, ctx, s),
            _stage2(logits, labels, ce, log_p, ctx, s),
        )
    return torch.where(ctx.valid, out, 0.0)


def needs_clean_logits(settings: TranSegPGDSettings) -> bool:
    """The clean source reference q is needed only for ``kl_reference="clean"``."""
    return settings.kl_reference == "clean"


METHODS = (AttackEntry(
    "transegpgd", TranSegPGDSettings, lambda s: functools.partial(transegpgd_loss, settings=s),
    paper="TranSegPGD: Improving Transferability of Adversarial Examples on Semantic Segmentation, Jia et al., "
          "arXiv:2312.02207",
    defaults={**PGD_DEFAULTS, "steps": 20, "step_schedule": "uniform"}, needs_clean_logits=needs_clean_logits,
),)
