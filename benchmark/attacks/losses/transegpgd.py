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

import math

import torch
from torch import Tensor

from benchmark.attacks.losses.ce import ce_from_log_probs, log_probs, safe_labels
from benchmark.attacks.losses.segpgd import branch_weights, correct_mask, ramp
from benchmark.attacks.parts import LossContext
from benchmark.attacks.settings import TranSegPGDSettings


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
