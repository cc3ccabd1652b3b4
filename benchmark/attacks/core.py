"""The one iterative L-inf loop every attack runs (attacks.md 1, 4.2 and 5).

    x^0 = Pi(x_init) or Pi(x + U[-eps, eps]) or x,   x^{t+1} = rule(x^t, d^t),
    Pi(z) = clamp(z, max(x - eps, 0), min(x + eps, 1)),

where d^t is the gradient of the objective with respect to the query point (x^t, or NI's look-ahead
point) after the gradient transforms (VT, TI, momentum, in that order), and ``rule`` is the plan's step
rule (the sign step by default). The objective of image n is

    J_n = sum over copies c of w_c * mean over views v of c of (1 / norm_n) sum_{i in V_n,v} l_{n,i}

for a pixel loss (copies from a pixel transform, views from a geometry transform, V_n,v the valid
pixels the view covers), sum_c w_c * mean_v G_n(logits of view v) for an image loss (a loss that
returns one value per image itself, not a pixel map), or sum_c w_c * F_n(features of copy c) for a
feature loss. The core sums J_n over the batch before differentiating, so an image's gradient never
depends on its batch.

Two hooks serve losses that need more than one forward's logits (RP-PGD):

- ``ctx.state``: a dict created empty for each run (one per loss evaluation of a "loss" ensemble) and
  handed to every evaluation of that run; the loss may keep per-pixel state across steps in it (its
  regions). Evaluations within one step (copies, views, VT's probes) share it, so a loss updates it
  once per step by comparing ``ctx.step`` with the step it stored.
- ``Plan.loss_features``: the model runs once per evaluation returning logits and the output of
  ``Plan.feature_layer`` (:func:`benchmark.attacks.features.logits_and_features`), and the loss reads
  the features as ``ctx.features``; members of an ensemble are then evaluated one by one (features of
  different models do not mix) and geometry transforms are refused by the registry.

The model is an argument; the loop never changes its mode or parameters, takes gradients with
``torch.autograd.grad`` on the input only, never touches the global RNG and never synchronises with
the host except for the integer draws of geometry transforms (CPU generators do not synchronise a GPU).
An image whose clean source logits or input gradient turn non-finite at any step (a NaN model, an
fp16 overflow) comes back as NaN, flagged on the device without a host read: never a silent no-op
attack; the caller's check of the result (the module's perturbation statistics) names the attack.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from benchmark.attacks.features import feature_extractor, logits_and_features
from benchmark.attacks.losses.ce import correct_mask
from benchmark.attacks.parts import (
    FeatureLoss,
    GeometryTransform,
    GradTransform,
    ImageLoss,
    LossContext,
    PixelLoss,
    PixelTransform,
    Probe,
    StepRule,
    View,
    identity_view,
)
from benchmark.attacks.rng import PerImageRNG
from benchmark.attacks.rules.sign import SignStep, project
from benchmark.attacks.schedules import SCHEDULES
from benchmark.attacks.settings import IterativeSettings
from benchmark.attacks.targets import target_map

Model = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class TargetSpec:
    """How a targeted attack draws its target map (:mod:`benchmark.attacks.targets`)."""

    rule: str = "permutation"
    target_class: int = 0


@dataclass(frozen=True)
class Plan:
    """The parts of one attack, composed by the registry.

    Args:
        settings: the base attack's resolved settings.
        loss: the pixel loss (None when ``feature_loss`` is set).
        feature_loss: a per-image loss on intermediate features (FSPGD), or None.
        image_loss: a loss returning one value per image from the logits (RP-PGD), or None.
        loss_features: the pixel or image loss reads ``ctx.features`` of ``feature_layer``.
        feature_layer: the layer the feature loss reads (None: each model's ``default_feature_layer``).
        needs_clean_logits: whether the loss reads ``ctx.clean_logits``.
        pixel_transform: SI, Admix, SSA or None.
        input_transform: the geometry transform: DI, DS, BSR or None.
        grad_transforms: VT, TI and / or momentum, in any order (the core sorts them by ``order``).
        step_rule: how a direction becomes the next iterate (default: the sign step).
        target: the target map of a targeted attack, or None.
    """

    settings: IterativeSettings
    loss: PixelLoss | None = None
    feature_loss: FeatureLoss | None = None
    image_loss: ImageLoss | None = None
    loss_features: bool = False
    feature_layer: str | None = None
    needs_clean_logits: bool = False
    pixel_transform: PixelTransform | None = None
    input_transform: GeometryTransform | None = None
    grad_transforms: tuple[GradTransform, ...] = field(default=())
    step_rule: StepRule = field(default_factory=SignStep)
    target: TargetSpec | None = None


def as_models(model: Model | Sequence[Model]) -> list[Model]:
    """One model, or the members of an ensemble (a list, tuple or ``nn.ModuleList``)."""
    if isinstance(model, (list, tuple, nn.ModuleList)):
        models = list(model)
        if not models:
            raise ValueError("model: an ensemble needs at least one model")
        return models
    return [model]


def _mean(tensors: list[Tensor]) -> Tensor:
    return tensors[0] if len(tensors) == 1 else torch.stack([t.float() for t in tensors]).mean(dim=0)


def per_image_objective(loss_map: Tensor, valid: Tensor, normalizer: str) -> Tensor:
    """(N,): (sum of image n's valid pixel losses) / (|V_n| or H * W)."""
    per_image = torch.where(valid, loss_map, 0.0).sum(dim=(1, 2))
    if normalizer == "valid":
        return per_image / valid.sum(dim=(1, 2)).clamp(min=1)
    return per_image / (valid.shape[1] * valid.shape[2])


def reduce_pixel_loss(loss_map: Tensor, valid: Tensor, normalizer: str) -> Tensor:
    """J = sum over images of (sum of the valid pixel losses) / (|V_n| or H * W); a scalar."""
    return per_image_objective(loss_map, valid, normalizer).sum()


def source_accuracy(logits: Tensor, labels: Tensor, valid: Tensor) -> Tensor:
    """(N,) valid-pixel accuracy (0 for an image without valid pixels)."""
    return correct_mask(logits, labels, valid).sum(dim=(1, 2)) / valid.sum(dim=(1, 2)).clamp(min=1)


def ensemble_logits(models: list[Model], x: Tensor) -> Tensor:
    """(N, K, H, W) float32 mean logits of the members on x, without gradient."""
    with torch.no_grad():
        return _mean([m(x).float() for m in models])


def _check_inputs(images: Tensor, labels: Tensor) -> None:
    if images.dim() != 4 or not images.is_floating_point():
        raise ValueError(f"images: expected a float (N, C, H, W) tensor, got {tuple(images.shape)} {images.dtype}")
    if labels.dim() != 3 or labels.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"labels: expected shape {(images.shape[0], *images.shape[2:])}, got {tuple(labels.shape)}")
    if labels.dtype != torch.int64:
        raise ValueError(f"labels: expected int64, got {labels.dtype}")


class _Objective:
    """The objective of one run: (query point, t) -> (input gradient, (N,) values, logits or None)."""

    def __init__(self, plan: Plan, models: list[Model], labels: Tensor, valid: Tensor, contexts: list,
                 targets: Tensor | None, extractors: list | None, clean_features: list | None,
                 rng: PerImageRNG) -> None:
        self.plan, self.models, self.labels, self.valid = plan, models, labels, valid
        self.contexts, self.targets, self.rng = contexts, targets, rng
        self.extractors, self.clean_features = extractors, clean_features
        # one state per loss evaluation, alive for this run only (module docstring)
        self.states = [{} for _ in contexts]
        self.forwards = None
        if plan.loss_features:
            self.forwards = [logits_and_features(m, plan.feature_layer) for m in models]

    def __call__(self, point: Tensor, t: int) -> tuple[Tensor, Tensor, Tensor | None]:
        x_query = point.detach().requires_grad_(True)
        transform = self.plan.pixel_transform
        copies = transform(x_query, self.rng) if transform is not None else [(x_query, 1.0)]
        grad, values, seen = None, None, None
        for copy, weight in copies:
            if self.plan.feature_loss is not None:
                parts = [self._features(copy, x_query, weight, t)]
            else:
                geometry = self.plan.input_transform
                views = geometry(copy, self.rng) if geometry is not None else [identity_view(copy)]
                parts = [self._view(view, x_query, weight / len(views), t) for view in views]
            for g, v, logits in parts:
                grad = g if grad is None else grad + g
                values = v if values is None else values + v
                seen = logits
        return grad, values, seen

    def _ctx(self, i: int, valid: Tensor, t: int, features: Tensor | None = None) -> LossContext:
        return LossContext(t, self.plan.settings.steps, valid, *self.contexts[i], self.targets,
                           features, self.states[i])

    def _values(self, logits: Tensor, ctx: LossContext) -> Tensor:
        """(N,) objective of the loss on ``logits``: the image loss, or the reduced pixel loss."""
        if self.plan.image_loss is not None:
            return self.plan.image_loss(logits, self.labels, ctx)
        return per_image_objective(self.plan.loss(logits, self.labels, ctx), ctx.valid,
                                   self.plan.settings.loss_normalizer)

    def _forward(self, i: int, view: View) -> tuple[Tensor, Tensor | None]:
        """Model i's logits on the view (and its features when the loss reads them)."""
        if self.forwards is not None:
            (inp,) = view.inputs  # the registry refuses geometry transforms for such losses
            logits, features = self.forwards[i](inp)
            return logits, features.float()
        return view.back([self.models[i](inp) for inp in view.inputs]), None

    def _view(self, view: View, x_query: Tensor, weight: float, t: int):
        s, models = self.plan.settings, self.models
        valid = self.valid if view.coverage is None else self.valid & view.coverage
        if len(models) == 1 or (s.ensemble == "logits" and self.forwards is None):
            if self.forwards is not None:
                logits, features = self._forward(0, view)
            else:
                logits, features = _mean([view.back([m(inp) for inp in view.inputs]) for m in models]), None
            values = weight * self._values(logits, self._ctx(0, valid, t, features))
            (grad,) = torch.autograd.grad(values.sum(), x_query)
            return grad, values.detach(), logits.detach()
        # "loss" ensemble: average the per-model objectives. Backpropagate model by model to the model
        # inputs (only one model's graph is alive at a time), then once through the transforms.
        input_grads = [torch.zeros_like(inp) for inp in view.inputs]
        values, seen = 0.0, []
        for i in range(len(models)):
            logits, features = self._forward(i, view)
            v = (weight / len(models)) * self._values(logits, self._ctx(i, valid, t, features))
            parts = torch.autograd.grad(v.sum(), view.inputs)
            input_grads = [acc + g for acc, g in zip(input_grads, parts)]
            values = values + v.detach()
            seen.append(logits.detach().float())
        return self._to_query(view.inputs, input_grads, x_query), values, _mean(seen)

    def _features(self, copy: Tensor, x_query: Tensor, weight: float, t: int):
        # Feature losses average the per-model objectives (features of different models do not mix).
        inputs_grad, values = torch.zeros_like(copy), 0.0
        ctx = self._ctx(0, self.valid, t)
        for extract, clean in zip(self.extractors, self.clean_features):
            v = (weight / len(self.models)) * self.plan.feature_loss(extract(copy).float(), clean, ctx)
            (g,) = torch.autograd.grad(v.sum(), copy)
            inputs_grad, values = inputs_grad + g, values + v.detach()
        return self._to_query([copy], [inputs_grad], x_query), values, None

    @staticmethod
    def _to_query(inputs: list[Tensor], grads: list[Tensor], x_query: Tensor) -> Tensor:
        if len(inputs) == 1 and inputs[0] is x_query:
            return grads[0]
        (grad,) = torch.autograd.grad(inputs, x_query, grad_outputs=grads)
        return grad


def run(
    plan: Plan,
    model: Model | Sequence[Model],
    images: Tensor,
    labels: Tensor,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    x_init: Tensor | None = None,
) -> Tensor:
    """Run the iterative L-inf attack ``plan`` on ``model`` (or an ensemble).

    Args:
        plan: settings and parts.
        model: a callable (N, C, H, W) in [0, 1] -> logits (N, K, H, W), or a sequence of them.
        images: (N, C, H, W) float in [0, 1]; not modified.
        labels: (N, H, W) int64 with ``ignore_index``; not modified.
        generator: None, one torch.Generator, or N of them (one per image).
        x_init: (N, C, H, W) starting point instead of the (random) start, projected onto the ball
            (the stages of a radius schedule); None for the plan's own start.

    Returns:
        (N, C, H, W) adversarial images, detached, same dtype and device as ``images``.
        An image whose clean source logits (when the plan reads them) or input gradient at some step
        hold NaN or inf is all NaN.
    """
    s = plan.settings
    _check_inputs(images, labels)
    models = as_models(model)
    x = images.detach()
    valid = labels != s.ignore_index
    rng = PerImageRNG(generator, x.shape[0], x.device, x.dtype)

    # Clean source logits, once, without gradient and without any input transform.
    clean: list[Tensor] | None = None
    broken = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)  # (N,) non-finite logits or gradient
    if plan.needs_clean_logits or s.label_source == "clean_pred" or plan.target is not None:
        with torch.no_grad():
            clean = [m(x).float() for m in models]
        for c in clean:
            broken |= ~torch.isfinite(c).flatten(1).all(1)
        if s.ensemble == "logits":
            clean = [_mean(clean)]
    loss_labels = labels
    if s.label_source == "clean_pred":
        loss_labels = torch.where(valid, _mean(clean).argmax(dim=1), labels)
    targets = None
    if plan.target is not None:
        targets = target_map(labels, valid, clean[0].shape[1], plan.target.rule, plan.target.target_class,
                             rng, s.ignore_index)
    n_losses = len(models) if s.ensemble == "loss" or plan.loss_features else 1
    # (clean logits, their log-softmax) per loss evaluation, computed once for the whole run.
    contexts = [(c, c.log_softmax(dim=1)) for c in clean] if plan.needs_clean_logits else [(None, None)] * n_losses
    contexts = contexts * (n_losses // len(contexts))  # members evaluated one by one for their features
    extractors = clean_features = None
    if plan.feature_loss is not None:
        extractors = [feature_extractor(m, plan.feature_layer) for m in models]
        with torch.no_grad():
            clean_features = [extract(x).float() for extract in extractors]
    objective = _Objective(plan, models, loss_labels, valid, contexts, targets, extractors, clean_features, rng)

    lower, upper = (x - s.eps).clamp(min=0), (x + s.eps).clamp(max=1)
    x_adv = x
    if x_init is not None:
        x_adv = project(x_init.detach().to(x.dtype), lower, upper)
    elif s.random_start:
        noise = (2 * rng.uniform(tuple(x.shape[1:])) - 1) * s.eps
        x_adv = project(x + noise, lower, upper)

    transforms = sorted(plan.grad_transforms, key=lambda g: g.order)
    states = [g.init(x) for g in transforms]
    rule_state = plan.step_rule.init(x_adv, s.eps)
    schedule = SCHEDULES[s.step_schedule]
    track_best = s.return_iterate == "best"
    plain = plan.pixel_transform is None and plan.input_transform is None and plan.feature_loss is None
    best, best_acc = x_adv, None

    for t in range(s.steps):
        alpha_t = schedule(s.alpha, t, s.steps, rng, s.step_min_ratio)
        x_query, shifted = x_adv, False
        for g, state in zip(transforms, states):
            ahead = g.lookahead(state)
            if ahead is not None:
                x_query, shifted = x_query + alpha_t * ahead, True
        grad, values, seen = objective(x_query, t)
        broken |= ~torch.isfinite(grad).flatten(1).all(1)
        if track_best:
            if shifted or not plain:
                seen = ensemble_logits(models, x_adv)
            best, best_acc = _keep_best(best, best_acc, x_adv, source_accuracy(seen, labels, valid))
        probe = Probe(x_query.detach(), s.eps, rng, lambda points, t=t: objective(points, t)[0], x_adv.detach())
        for i, g in enumerate(transforms):
            grad, states[i] = g(grad, states[i], probe)
        x_adv, rule_state = plan.step_rule.step(x_adv, grad, values, alpha_t, lower, upper, rule_state, t)

    if track_best:
        final = ensemble_logits(models, x_adv)
        x_adv, _ = _keep_best(best, best_acc, x_adv, source_accuracy(final, labels, valid))
    x_adv = torch.where(broken[:, None, None, None], torch.full_like(x_adv, float("nan")), x_adv)
    return x_adv.detach().to(dtype=images.dtype)


def _keep_best(best: Tensor, best_acc: Tensor | None, cand: Tensor, acc: Tensor) -> tuple[Tensor, Tensor]:
    """Per image, keep the iterate with the lowest accuracy; later iterates win ties."""
    if best_acc is None:
        return cand, acc
    take = acc <= best_acc
    return torch.where(take[:, None, None, None], cand, best), torch.where(take, acc, best_acc)
