"""The one iterative L-inf loop every attack runs (attacks.md 1 and 4.2).

    x^0 = Pi(x + U[-eps, eps]) or x,   x^{t+1} = Pi(x^t + alpha_t * sign(d^t)),
    Pi(z) = clamp(z, max(x - eps, 0), min(x + eps, 1)),

where d^t is the gradient of J = sum_n (1 / norm_n) sum_{i in V_n} l_{n,i} with respect to the
(possibly transformed) query point, after the gradient transforms (TI, then momentum). J is a sum of
per-image means, so an image's gradient never depends on its batch.

The model is an argument; the loop never changes its mode or parameters, takes gradients with
``torch.autograd.grad`` on the input only, never touches the global RNG and never synchronises with
the host except for DI's integer draws (CPU generators do not synchronise a GPU).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from benchmark.attacks.losses.segpgd import correct_mask
from benchmark.attacks.parts import GradTransform, InputTransform, LossContext, PixelLoss
from benchmark.attacks.rng import PerImageRNG
from benchmark.attacks.schedules import SCHEDULES
from benchmark.attacks.settings import IterativeSettings

Model = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class Plan:
    """The parts of one attack, composed by the registry.

    Args:
        settings: the base attack's resolved settings.
        loss: the pixel loss.
        needs_clean_logits: whether the loss reads ``ctx.clean_logits``.
        input_transform: DI or None.
        grad_transforms: TI and / or momentum, in any order (the core sorts them by ``order``).
    """

    settings: IterativeSettings
    loss: PixelLoss
    needs_clean_logits: bool = False
    input_transform: InputTransform | None = None
    grad_transforms: tuple[GradTransform, ...] = field(default=())


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


def reduce_pixel_loss(loss_map: Tensor, valid: Tensor, normalizer: str) -> Tensor:
    """J = sum over images of (sum of the valid pixel losses) / (|V_n| or H * W); a scalar."""
    per_image = torch.where(valid, loss_map, 0.0).sum(dim=(1, 2))
    if normalizer == "valid":
        return (per_image / valid.sum(dim=(1, 2)).clamp(min=1)).sum()
    return per_image.sum() / (valid.shape[1] * valid.shape[2])


def _accuracy(logits: Tensor, labels: Tensor, valid: Tensor) -> Tensor:
    """(N,) valid-pixel accuracy (0 for an image without valid pixels)."""
    return correct_mask(logits, labels, valid).sum(dim=(1, 2)) / valid.sum(dim=(1, 2)).clamp(min=1)


def _check_inputs(images: Tensor, labels: Tensor) -> None:
    if images.dim() != 4 or not images.is_floating_point():
        raise ValueError(f"images: expected a float (N, C, H, W) tensor, got {tuple(images.shape)} {images.dtype}")
    if labels.dim() != 3 or labels.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"labels: expected shape {(images.shape[0], *images.shape[2:])}, got {tuple(labels.shape)}")
    if labels.dtype != torch.int64:
        raise ValueError(f"labels: expected int64, got {labels.dtype}")


def run(
    plan: Plan,
    model: Model | Sequence[Model],
    images: Tensor,
    labels: Tensor,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
) -> Tensor:
    """Run the iterative L-inf attack ``plan`` on ``model`` (or an ensemble).

    Args:
        plan: settings and parts.
        model: a callable (N, C, H, W) in [0, 1] -> logits (N, K, H, W), or a sequence of them.
        images: (N, C, H, W) float in [0, 1]; not modified.
        labels: (N, H, W) int64 with ``ignore_index``; not modified.
        generator: None, one torch.Generator, or N of them (one per image).

    Returns:
        (N, C, H, W) adversarial images, detached, same dtype and device as ``images``.
    """
    s = plan.settings
    _check_inputs(images, labels)
    models = as_models(model)
    x = images.detach()
    valid = labels != s.ignore_index
    rng = PerImageRNG(generator, x.shape[0], x.device, x.dtype)

    # Clean source logits, once, without gradient and without any input transform.
    clean: list[Tensor] | None = None
    if plan.needs_clean_logits or s.label_source == "clean_pred":
        with torch.no_grad():
            clean = [m(x).float() for m in models]
        if s.ensemble == "logits":
            clean = [_mean(clean)]
    loss_labels = labels
    if s.label_source == "clean_pred":
        loss_labels = torch.where(valid, _mean(clean).argmax(dim=1), labels)
    n_losses = len(models) if s.ensemble == "loss" else 1
    # (clean logits, their log-softmax) per loss evaluation, computed once for the whole run.
    contexts = [(c, c.log_softmax(dim=1)) for c in clean] if plan.needs_clean_logits else [(None, None)] * n_losses

    lower, upper = (x - s.eps).clamp(min=0), (x + s.eps).clamp(max=1)
    x_adv = x
    if s.random_start:
        noise = (2 * rng.uniform(tuple(x.shape[1:])) - 1) * s.eps
        x_adv = torch.max(torch.min(x + noise, upper), lower)

    transforms = sorted(plan.grad_transforms, key=lambda g: g.order)
    states = [g.init(x) for g in transforms]
    schedule = SCHEDULES[s.step_schedule]
    track_best = s.return_iterate == "best"
    best, best_acc = x_adv, None

    for t in range(s.steps):
        alpha_t = schedule(s.alpha, t, s.steps, rng, s.step_min_ratio)
        x_query = x_adv
        shifted = False
        for g, state in zip(transforms, states):
            ahead = g.lookahead(state)
            if ahead is not None:
                x_query, shifted = x_query + alpha_t * ahead, True
        x_query = x_query.detach().requires_grad_(True)
        if plan.input_transform is not None:
            inputs, back = plan.input_transform(x_query, rng)
        else:
            inputs, back = [x_query], (lambda outs: outs[0])
        unchanged = not shifted and len(inputs) == 1 and inputs[0] is x_query

        grad, seen = _gradient(plan, models, inputs, back, x_query, loss_labels, valid, contexts, t)
        if track_best:
            if not unchanged:
                with torch.no_grad():
                    seen = _mean([m(x_adv).float() for m in models])
            best, best_acc = _keep_best(best, best_acc, x_adv, _accuracy(seen, labels, valid))
        for i, g in enumerate(transforms):
            grad, states[i] = g(grad, states[i])
        x_adv = torch.max(torch.min(x_adv + alpha_t * grad.sign(), upper), lower).detach()

    if track_best:
        with torch.no_grad():
            final = _mean([m(x_adv).float() for m in models])
        x_adv, _ = _keep_best(best, best_acc, x_adv, _accuracy(final, labels, valid))
    return x_adv.detach().to(dtype=images.dtype)


def _keep_best(best: Tensor, best_acc: Tensor | None, cand: Tensor, acc: Tensor) -> tuple[Tensor, Tensor]:
    """Per image, keep the iterate with the lowest accuracy; later iterates win ties."""
    if best_acc is None:
        return cand, acc
    take = acc <= best_acc
    return torch.where(take[:, None, None, None], cand, best), torch.where(take, acc, best_acc)


def _gradient(plan, models, inputs, back, x_query, labels, valid, contexts, t) -> tuple[Tensor, Tensor]:
    """d J / d x_query and the (detached, float32, ensemble-mean) logits aligned with the labels."""
    s = plan.settings
    steps = s.steps
    if s.ensemble == "logits" or len(models) == 1:
        logits = _mean([back([m(inp) for inp in inputs]) for m in models])
        ctx = LossContext(t, steps, valid, *contexts[0])
        j = reduce_pixel_loss(plan.loss(logits, labels, ctx), valid, s.loss_normalizer)
        (grad,) = torch.autograd.grad(j, x_query)
        return grad, logits.detach()
    # "loss" ensemble: average the per-model objectives. Backpropagate model by model to the model
    # inputs (only one model's graph is alive at a time), then once through the input transform.
    input_grads = [torch.zeros_like(inp) for inp in inputs]
    seen = []
    for m, clean in zip(models, contexts):
        logits = back([m(inp) for inp in inputs])
        ctx = LossContext(t, steps, valid, *clean)
        j = reduce_pixel_loss(plan.loss(logits, labels, ctx), valid, s.loss_normalizer) / len(models)
        parts = torch.autograd.grad(j, inputs)
        input_grads = [acc + g for acc, g in zip(input_grads, parts)]
        seen.append(logits.detach().float())
    if len(inputs) == 1 and inputs[0] is x_query:
        grad = input_grads[0]
    else:
        (grad,) = torch.autograd.grad(inputs, x_query, grad_outputs=input_grads)
    return grad, _mean(seen)
