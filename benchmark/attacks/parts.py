"""The small interfaces the core composes (attacks.md 4.1): pixel losses and transforms.

A pixel loss maps (logits (N, K, H, W), labels (N, H, W), ctx) to a loss map (N, H, W) that is 0 at
ignored pixels. Input transforms (DI) turn the query point into model sub-batches plus ``back``, which
maps their logits to one (N, K, H, W) tensor aligned with the labels. Gradient transforms (TI, MI, NI)
act on the raw input gradient with explicit per-call state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from torch import Tensor

from benchmark.attacks.rng import PerImageRNG


@dataclass(frozen=True)
class LossContext:
    """What a pixel loss may read besides logits and labels.

    Args:
        step: t, 0-based.
        steps: T.
        valid: (N, H, W) bool, labels != ignore_index.
        clean_logits: (N, K, H, W) float32 of the source on the clean images, no grad; None unless
            the loss asked for it.
        clean_log_probs: their log-softmax over classes, computed once by the core (or None).
    """

    step: int
    steps: int
    valid: Tensor
    clean_logits: Tensor | None = None
    clean_log_probs: Tensor | None = None


PixelLoss = Callable[[Tensor, Tensor, LossContext], Tensor]
Back = Callable[[list[Tensor]], Tensor]


class InputTransform(Protocol):
    def __call__(self, x: Tensor, rng: PerImageRNG) -> tuple[list[Tensor], Back]: ...


class GradTransform(Protocol):
    order: int  # execution order in the core: TI (0) before momentum (1)

    def init(self, x: Tensor) -> Any: ...

    def __call__(self, grad: Tensor, state: Any) -> tuple[Tensor, Any]: ...

    def lookahead(self, state: Any) -> Tensor | None: ...
