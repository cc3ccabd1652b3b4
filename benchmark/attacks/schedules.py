"""Step-size schedules alpha_t for the iterative core (attacks.md 3.3, A10).

Every schedule has mean step alpha over the T steps (the uniform one in expectation), so dynamic
schedules spend the same total step length as the constant one. With rho = ``step_min_ratio`` in
(0, 1] and u = t / (T - 1) (alpha_t = alpha when T = 1):

    constant:  alpha_t = alpha
    linear:    alpha_t = alpha * ((2 - rho) - 2 (1 - rho) u)         from (2 - rho) alpha to rho alpha
    cosine:    alpha_t = alpha * (rho + (1 - rho)(1 + cos(pi u)))     from (2 - rho) alpha to rho alpha
    uniform:   alpha_t ~ U[rho alpha, (2 - rho) alpha], per image and per step, from the generator

Each function returns a (N, 1, 1, 1) tensor on the rng's device and dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from benchmark.attacks.rng import PerImageRNG


def _fill(value: float, rng: PerImageRNG) -> Tensor:
    return torch.full((rng.n, 1, 1, 1), value, device=rng.device, dtype=rng.dtype)


def _position(t: int, steps: int) -> float:
    return 0.0 if steps == 1 else t / (steps - 1)


def constant(alpha: float, t: int, steps: int, rng: PerImageRNG, min_ratio: float) -> Tensor:
    """alpha_t = alpha."""
    return _fill(alpha, rng)


def linear(alpha: float, t: int, steps: int, rng: PerImageRNG, min_ratio: float) -> Tensor:
    """Linear decay from (2 - rho) alpha to rho alpha."""
    if steps == 1:
        return _fill(alpha, rng)
    u = _position(t, steps)
    return _fill(alpha * ((2 - min_ratio) - 2 * (1 - min_ratio) * u), rng)


def cosine(alpha: float, t: int, steps: int, rng: PerImageRNG, min_ratio: float) -> Tensor:
    """Cosine decay from (2 - rho) alpha to rho alpha."""
    if steps == 1:
        return _fill(alpha, rng)
    u = _position(t, steps)
    return _fill(alpha * (min_ratio + (1 - min_ratio) * (1 + math.cos(math.pi * u))), rng)


def uniform(alpha: float, t: int, steps: int, rng: PerImageRNG, min_ratio: float) -> Tensor:
    """alpha_t ~ U[rho alpha, (2 - rho) alpha], one draw per image from its generator."""
    if steps == 1:
        return _fill(alpha, rng)
    u = rng.uniform(()).view(rng.n, 1, 1, 1)
    return alpha * (min_ratio + 2 * (1 - min_ratio) * u)


SCHEDULES: dict[str, Callable[[float, int, int, PerImageRNG, float], Tensor]] = {
    "constant": constant,
    "linear": linear,
    "cosine": cosine,
    "uniform": uniform,
}
