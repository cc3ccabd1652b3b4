"""Targeted pixel losses: descend the loss towards the target label map instead of ascending it.

For a base whose untargeted loss is CE (FGSM / BIM / PGD, APGD-CE) or Tsallis CE (TsallisPGD), the
targeted loss is its negative evaluated at the targets t_i (``ctx.targets``):

    l_i = -CE(z_i, t_i)          or   l_i = -L_q(softmax(z_i)[t_i])

so the ascent of the core pulls every valid pixel towards its target. Ignored pixels stay 0.
"""

from __future__ import annotations

from functools import partial

from torch import Tensor

from benchmark.attacks.losses.ce import pixel_ce
from benchmark.attacks.losses.tsallis import q_at, tsallis_pixel_loss
from benchmark.attacks.parts import LossContext


def targeted_ce_loss(logits: Tensor, labels: Tensor, ctx: LossContext) -> Tensor:
    """-CE towards the targets."""
    return -pixel_ce(logits, ctx.targets, ctx.valid)


def targeted_tsallis_loss(logits: Tensor, labels: Tensor, ctx: LossContext, q_start: float, q_end: float,
                          q_schedule: str) -> Tensor:
    """-L_q towards the targets, q on the TsallisPGD schedule."""
    return -tsallis_pixel_loss(logits, ctx.targets, ctx.valid, q_at(ctx.step, ctx.steps, q_start, q_end, q_schedule))


def targeted_tsallis(settings) -> partial:
    return partial(targeted_tsallis_loss, q_start=settings.q_start, q_end=settings.q_end,
                   q_schedule=settings.q_schedule)
