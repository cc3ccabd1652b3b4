"""The small interfaces the core composes (attacks.md 4.1 and 5): losses, transforms, step rules.

- A **pixel loss** maps (logits (N, K, H, W), labels (N, H, W), ctx) to a loss map (N, H, W) that is 0 at
  ignored pixels; the core reduces it to one value per image.
- A **feature loss** maps (adversarial features (N, C, h, w), clean features, ctx) to one value per image
  (N,); no reduction step (FSPGD).
- An **image loss** maps (logits, labels, ctx) to one value per image (N,) itself, instead of a pixel
  map the core reduces: for objectives that are not per-pixel means (region means, prototypes; RP-PGD).
  It may read the features of the same forward (``ctx.features``) and a per-run state (``ctx.state``).
- A **pixel transform** (SI, Admix, SSA) maps the query point to weighted copies of the same geometry;
  the objective is the weighted sum over copies (weights sum to 1).
- A **geometry transform** (DI, DS, BSR) maps one copy to :class:`View` s: model sub-batches plus
  ``back``, which maps their logits to one (N, K, H, W) tensor aligned with the labels, and an optional
  coverage mask of the pixels the view sees.
- A **gradient transform** (VT, TI, MI / NI) acts on the raw input gradient with explicit per-call state;
  it may ask the core for gradients at other points through the :class:`Probe`.
- A **step rule** turns the direction into the next iterate (sign step, APGD, DAG's L-inf normalised step).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from torch import Tensor

from benchmark.attacks.rng import PerImageRNG


@dataclass(frozen=True)
class LossContext:
    """What a loss may read besides logits and labels.

    Args:
        step: t, 0-based.
        steps: T.
        valid: (N, H, W) bool, labels != ignore_index (and inside the view's coverage).
        clean_logits: (N, K, H, W) float32 of the source on the clean images, no grad; None unless
            the loss asked for it.
        clean_log_probs: their log-softmax over classes, computed once by the core (or None).
        targets: (N, H, W) int64 target label map of a targeted attack (DAG, ``+targeted``), ignored
            pixels kept at ``ignore_index``; None otherwise.
        features: (N, C, h, w) output of the plan's feature layer in the same forward pass as the
            logits, differentiable; None unless the plan's loss reads features (``Plan.loss_features``).
        state: a dict that lives for one run of the core (one per loss evaluation of an ensemble),
            empty at the start; the loss may read and update it (RP-PGD's pixel regions). It is
            shared by every evaluation of the run (copies, views, probes), so a loss that changes it
            once per step compares ``step`` with what it stored.
    """

    step: int
    steps: int
    valid: Tensor
    clean_logits: Tensor | None = None
    clean_log_probs: Tensor | None = None
    targets: Tensor | None = None
    features: Tensor | None = None
    state: dict | None = None


PixelLoss = Callable[[Tensor, Tensor, LossContext], Tensor]
FeatureLoss = Callable[[Tensor, Tensor, LossContext], Tensor]
ImageLoss = Callable[[Tensor, Tensor, LossContext], Tensor]
Back = Callable[[list[Tensor]], Tensor]


class View(NamedTuple):
    """One model evaluation of a geometry transform.

    ``inputs``: the model sub-batches; ``back``: their logits -> (N, K, H, W) aligned with the labels;
    ``coverage``: (N, H, W) bool of the pixels whose logits ``back`` can restore, or None for all.
    """

    inputs: list[Tensor]
    back: Back
    coverage: Tensor | None = None


def identity_view(x: Tensor) -> View:
    """The view of an untransformed query point."""
    return View([x], lambda outs: outs[0])


class PixelTransform(Protocol):
    def __call__(self, x: Tensor, rng: PerImageRNG) -> list[tuple[Tensor, float]]: ...


class GeometryTransform(Protocol):
    def __call__(self, x: Tensor, rng: PerImageRNG) -> list[View]: ...


# The name the earlier, single-slot interface used; DI, DS and BSR are geometry transforms.
InputTransform = GeometryTransform


@dataclass
class Probe:
    """What a gradient transform may ask of the core at one step.

    Args:
        point: the query point x_query of this step, (N, C, H, W), detached.
        eps: the L-inf budget.
        rng: the per-image generators.
        gradient: points (N, C, H, W) -> the objective's input gradient there (same step, same parts,
            fresh transform draws); each call costs what one step's gradient costs.
        iterate: the current iterate x^t, (N, C, H, W), detached: the query point itself unless a
            look-ahead (NI) moved it. None: the same as ``point``.
    """

    point: Tensor
    eps: float
    rng: PerImageRNG
    gradient: Callable[[Tensor], Tensor]
    iterate: Tensor | None = None


class GradTransform(Protocol):
    order: int  # execution order in the core: VT (-1), TI (0), momentum (1)

    def init(self, x: Tensor) -> Any: ...

    def __call__(self, grad: Tensor, state: Any, probe: Probe) -> tuple[Tensor, Any]: ...

    def lookahead(self, state: Any) -> Tensor | None: ...


class StepRule(Protocol):
    """x^{t+1} from x^t, the (transformed) direction and the per-image objective values at the query.

    ``step`` returns the next iterate, already projected onto [lower, upper].
    """

    def init(self, x0: Tensor, eps: float) -> Any: ...

    def step(self, x: Tensor, direction: Tensor, values: Tensor, alpha_t: Tensor, lower: Tensor, upper: Tensor,
             state: Any, t: int) -> tuple[Tensor, Any]: ...
