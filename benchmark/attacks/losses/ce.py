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


def ce_loss(logits: Tensor, labels: Tensor, ctx: LossContext) -> Tensor:
    """The plain CE pixel loss of FGSM, BIM, PGD and the FGSM presets."""
    return pixel_ce(logits, labels, ctx.valid)
