"""TsallisPGD pixel loss: the Tsallis cross-entropy with a parameter q swept during the attack.

Paper: "TsallisPGD: Adaptive Gradient Weighting for Adversarial Attacks on Semantic Segmentation",
arXiv:2605.03405 (2026); authors' code: github.com/aam-at/tsallis_pgd (``utils/losses/tsallis.py``:
``tsallis_ce``, ``adaptive_tsallis_ce_loss``). The loss is the Tsallis cross-entropy, a
q-generalisation of CE; q steers the gradient towards pixels of different confidence, and a dynamic
schedule sweeps q from -2 towards 1 (``q_start``, ``q_end``, ``q_schedule``; defaults linear, the
authors' ``q_linear`` with ``end_fraction`` 0).

With p = softmax(logits_i)[y_i] and the q-logarithm:

    L_q(p) = (1 - p^(1 - q)) / (1 - q)   (q != 1),   L_1(p) = -log p (CE)
    dL_q / d log p = -p^(1 - q)

so the CE gradient of each pixel is scaled by p^(1 - q): for q < 1 confident (still correct) pixels
weigh more and already-fooled pixels less; q = 1 is CE. The schedule at step t = 0, ..., T - 1 of T
(u = t / T, the authors' ``progress = step / iterations`` for the gradient of step t):

    constant: q_t = q_start;  linear: q_start + (q_end - q_start) u;
    cosine:   q_end + (q_start - q_end)(1 + cos(pi u)) / 2

so the last step uses q_start + (q_end - q_start)(T - 1) / T: q_end itself is the value at t = T,
where the authors' loop only evaluates the final loss (no gradient step follows).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from benchmark.attacks.losses.ce import log_probs, safe_labels
from benchmark.attacks.parts import LossContext

Q_SCHEDULES = ("constant", "linear", "cosine")


def q_at(step: int, steps: int, q_start: float, q_end: float, schedule: str) -> float:
    """q_t of the schedule (module docstring)."""
    if schedule == "constant":
        return q_start
    u = step / steps
    if schedule == "linear":
        return q_start + (q_end - q_start) * u
    return q_end + (q_start - q_end) * (1 + math.cos(math.pi * u)) / 2


def tsallis_from_log_p(log_p_true: Tensor, q: float) -> Tensor:
    """L_q from log p[y] (any shape); exactly -log p at q = 1."""
    if abs(1.0 - q) < 1e-12:
        return -log_p_true
    return -torch.expm1((1.0 - q) * log_p_true) / (1.0 - q)


def tsallis_pixel_loss(logits: Tensor, labels: Tensor, valid: Tensor, q: float) -> Tensor:
    """(N, H, W) L_q at each valid pixel, 0 at ignored pixels."""
    log_p_true = log_probs(logits).gather(1, safe_labels(labels, valid).unsqueeze(1)).squeeze(1)
    return torch.where(valid, tsallis_from_log_p(log_p_true, q), 0.0)


def tsallis_loss(logits: Tensor, labels: Tensor, ctx: LossContext, q_start: float, q_end: float,
                 q_schedule: str) -> Tensor:
    """TsallisPGD pixel loss at step ``ctx.step``."""
    return tsallis_pixel_loss(logits, labels, ctx.valid, q_at(ctx.step, ctx.steps, q_start, q_end, q_schedule))
