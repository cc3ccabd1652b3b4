"""APGD's step rule: momentum, an adaptive step size with checkpoints, and restarts from the best point.

Paper: "Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free
attacks", Croce, Hein, ICML 2020, arXiv:2003.01690; used for segmentation by SEA (arXiv:2306.12941).

With f_n the per-image objective at the query point (``values``), eta_n the step size (2 eps at start):

    z^{t+1}   = Pi(x^t + eta * sign(d^t))
    x^{t+1}   = Pi(x^t + a (z^{t+1} - x^t) + (1 - a)(x^t - x^{t-1})),  a = 1 at t = 0, else ``momentum``

Checkpoints: the first after k_0 = max(floor(0.22 T), 1) steps, then every k_j steps with
k_{j+1} = max(k_j - max(floor(0.03 T), 1), max(floor(0.06 T), 1)). The start x^0 opens the first
period, so the first checkpoint sees f(x^0), ..., f(x^{k_0}) (k_0 comparisons) and decides the step
from x^{k_0}, as in the reference (auto-attack ``autopgd_base.py`` and SEA's ``apgd_train``: their
``counter3`` counts iterations after the initial evaluation). At a checkpoint an image halves eta and
restarts from its best point x_best (highest f seen, with the direction seen there) when

    (1) #{steps of the period where f increased} <= rho * k_j          (rho = ``rho``, 0.75), or
    (2) it did not halve at the previous checkpoint and f_best did not improve since then.

The first period's first comparison is f(x^1) > f(x^0), as in the paper; the reference code compares
f(x_1) with an unfilled row of its loss buffer (0) instead.

Every decision is per image and on device (no host synchronisation). The step size ``alpha`` of the
core is not used: eta is the rule's own. The per-image objective may be normalised by |V_n| or H * W
(``loss_normalizer``): the factor is constant over the run, so every decision is the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from benchmark.attacks.rules.sign import project


@dataclass
class APGDState:
    eta: Tensor  # (N, 1, 1, 1)
    x_prev: Tensor
    x_best: Tensor
    d_best: Tensor
    f_best: Tensor  # (N,)
    f_best_at_check: Tensor
    halved_at_check: Tensor  # (N,) bool
    history: list  # per-image objective values of the current period, plus the one before it
    period: int
    since_check: int


class APGDStep:
    """APGD step rule.

    Args:
        steps: T, the run's number of steps (fixes the checkpoint schedule).
        initial_step: eta at start as a multiple of eps (default 2).
        momentum: a in (0, 1] (default 0.75).
        rho: oscillation threshold in (0, 1] (default 0.75).
    """

    def __init__(self, steps: int, initial_step: float = 2.0, momentum: float = 0.75, rho: float = 0.75) -> None:
        self.steps = steps
        self.initial_step = initial_step
        self.momentum = momentum
        self.rho = rho
        self.first_period = max(math.floor(0.22 * steps), 1)
        self.decrement = max(math.floor(0.03 * steps), 1)
        self.min_period = max(math.floor(0.06 * steps), 1)

    def init(self, x0: Tensor, eps: float) -> APGDState:
        n = x0.shape[0]
        return APGDState(
            eta=torch.full((n, 1, 1, 1), self.initial_step * eps, device=x0.device, dtype=x0.dtype),
            x_prev=x0, x_best=x0, d_best=torch.zeros_like(x0),
            f_best=torch.full((n,), -math.inf, device=x0.device),
            f_best_at_check=torch.full((n,), -math.inf, device=x0.device),
            halved_at_check=torch.ones(n, dtype=torch.bool, device=x0.device),
            # -1: the evaluation at x^0 opens the first period and is not one of its steps
            history=[], period=self.first_period, since_check=-1,
        )

    def step(self, x, direction, values, alpha_t, lower, upper, state: APGDState, t):
        values = values.detach().float()
        better = values > state.f_best
        image = better[:, None, None, None]
        state.x_best = torch.where(image, x, state.x_best)
        state.d_best = torch.where(image, direction, state.d_best)
        state.f_best = torch.where(better, values, state.f_best)
        state.history.append(values)
        state.since_check += 1
        if state.since_check == state.period:
            recent = state.history[-(state.period + 1):]
            increases = sum((b > a).float() for a, b in zip(recent, recent[1:]))
            oscillating = increases <= self.rho * state.period
            stalled = ~state.halved_at_check & (state.f_best_at_check >= state.f_best)
            halve = oscillating | stalled
            image = halve[:, None, None, None]
            state.eta = torch.where(image, state.eta / 2, state.eta)
            x = torch.where(image, state.x_best, x)
            direction = torch.where(image, state.d_best, direction)
            state.halved_at_check, state.f_best_at_check = halve, state.f_best
            state.history = state.history[-1:]
            state.since_check = 0
            state.period = max(state.period - self.decrement, self.min_period)
        a = 1.0 if t == 0 else self.momentum
        z = project(x + state.eta * direction.sign(), lower, upper)
        x_next = project(x + a * (z - x) + (1 - a) * (x - state.x_prev), lower, upper).detach()
        state.x_prev = x
        return x_next, state
