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

import functools
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from benchmark.attacks.bases.pgd import PGD_DEFAULTS
from benchmark.attacks.entries import AttackEntry
from benchmark.attacks.losses.ce import log_probs, safe_labels
from benchmark.attacks.parts import LossContext
from benchmark.attacks.settings import IterativeSettings, choice, real


@dataclass(frozen=True)
class TsallisPGDSettings(IterativeSettings):
    """TsallisPGD: PGD on the Tsallis cross-entropy with a dynamic q schedule.

    Paper: "TsallisPGD: Adaptive Gradient Weighting for Adversarial Attacks on Semantic Segmentation",
    arXiv:2605.03405 (only the abstract was available; the schedule's shape is an option).

    Args:
        (all of IterativeSettings; registry defaults alpha 2/255, steps 20, random start)
        q_start: q at the first step (default -2.0); finite, unitless.
        q_end: q at the last step (default 1.0, where L_q is CE).
        q_schedule: "linear" (default) | "cosine" | "constant" (q_start throughout).
    """

    steps: int = 20
    q_start: float = -2.0
    q_end: float = 1.0
    q_schedule: str = "linear"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "q_start", real("q_start", self.q_start))
        object.__setattr__(self, "q_end", real("q_end", self.q_end))
        choice("q_schedule", self.q_schedule, Q_SCHEDULES)


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


def targeted_tsallis_loss(logits: Tensor, labels: Tensor, ctx: LossContext, q_start: float, q_end: float,
                          q_schedule: str) -> Tensor:
    """-L_q towards the targets ``ctx.targets``, q on the TsallisPGD schedule (``+targeted``)."""
    return -tsallis_pixel_loss(logits, ctx.targets, ctx.valid, q_at(ctx.step, ctx.steps, q_start, q_end, q_schedule))


def _schedule(settings: TsallisPGDSettings) -> dict[str, Any]:
    return {"q_start": settings.q_start, "q_end": settings.q_end, "q_schedule": settings.q_schedule}


# Revision 2: q_t = q_start + (q_end - q_start) t / T, as the authors' code (q_end is reached at t = T).
METHODS = (AttackEntry(
    "tsallispgd", TsallisPGDSettings, lambda s: functools.partial(tsallis_loss, **_schedule(s)),
    paper="TsallisPGD: Adaptive Gradient Weighting for Adversarial Attacks on Semantic Segmentation, "
          "arXiv:2605.03405",
    defaults={**PGD_DEFAULTS, "steps": 20},
    targeted_loss=lambda s: functools.partial(targeted_tsallis_loss, **_schedule(s)),
    revision=lambda s: 2,
),)
