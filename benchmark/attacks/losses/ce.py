"""Per-pixel cross-entropy, the building block of every pixel loss.

Paper: the CE objective of FGSM / BIM / PGD, e.g. "Towards Deep Learning Models Resistant to
Adversarial Attacks", Madry et al., arXiv:1706.06083.

Logits are cast to float32 (also under autocast). Ignored labels are replaced by 0 before the gather
and the result is masked with ``torch.where`` afterwards, so 255 is never clamped to K - 1 and an
infinite logit at an ignored pixel cannot leak NaN into valid pixels' gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmark.attacks.parts import LossContext


def safe_labels(labels: Tensor, valid: Tensor) -> Tensor:
    """Labels with ignored pixels replaced by class 0 (mask the result afterwards)."""
    return torch.where(valid, labels, torch.zeros_like(labels))


def log_probs(logits: Tensor) -> Tensor:
    """Float32 log-softmax over classes, (N, K, H, W) -> (N, K, H, W)."""
    return logits.float().log_softmax(dim=1)


def ce_from_log_probs(log_p: Tensor, labels: Tensor, valid: Tensor) -> Tensor:
    """L_i from precomputed log-probabilities, so a loss that also needs them computes them once."""
    ce = F.nll_loss(log_p, safe_labels(labels, valid), reduction="none")
    return torch.where(valid, ce, 0.0)


def pixel_ce(logits: Tensor, labels: Tensor, valid: Tensor) -> Tensor:
    """L_i = -log softmax(logits_i)[y_i]; (N, K, H, W), (N, H, W), (N, H, W) -> (N, H, W), 0 if ignored.

    This is exactly ``F.cross_entropy`` (which is log-softmax followed by NLL), masked.
    """
    return ce_from_log_probs(log_probs(logits), labels, valid)


def correct_mask(logits: Tensor, labels: Tensor, valid: Tensor) -> Tensor:
    """(N, H, W) bool: valid pixels predicted as their label (no grad).

    "Predicted" means the label's logit is the maximum, so exact ties count as correct. This avoids
    a class-dim argmax, which is several times slower than the whole CE on CPU.
    """
    with torch.no_grad():
        logits = logits.detach()
        label_logit = logits.gather(1, torch.where(valid, labels, 0).unsqueeze(1)).squeeze(1)
        return valid & (label_logit >= logits.amax(dim=1))


def ce_loss(logits: Tensor, labels: Tensor, ctx: LossContext) -> Tensor:
    """The plain CE pixel loss of FGSM, BIM, PGD and the FGSM presets."""
    return pixel_ce(logits, labels, ctx.valid)


def targeted_ce_loss(logits: Tensor, labels: Tensor, ctx: LossContext) -> Tensor:
    """-CE towards the targets ``ctx.targets``: the ascent of the core pulls every valid pixel towards its
    target (the targeted mode of FGSM / BIM / PGD and APGD-CE); ignored pixels stay 0."""
    return -pixel_ce(logits, ctx.targets, ctx.valid)
