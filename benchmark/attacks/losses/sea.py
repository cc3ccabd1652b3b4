"""The pixel losses of SEA (Segmentation Ensemble Attack), each run by APGD.

Paper: "Towards Reliable Evaluation and Fast Training of Robust Semantic Segmentation Models",
Croce, Singh, Hein, arXiv:2306.12941 (ECCV 2024). Per valid pixel i, with p = softmax(z_i), y = y_i
and c_i = 1[the pixel is still correct] (detached):

    masked CE:           c_i * CE_i
    balanced CE:         (1 - n_n(y) / |V_n|) * CE_i     n_n(y): valid pixels of class y in image n
    balanced masked CE:  c_i * (1 - n_n(y) / |V_n|) * CE_i
    JS:                  JS(p || onehot(y)) = 1/2 [(1 - p_y) log 2 + p_y log(2 p_y / (1 + p_y))
                                                   - log((1 + p_y) / 2)]
    mask-norm:           -c_i * z_y / ||z||_2            (the masked normalised-logit loss)

JS to a one-hot label depends on p_y only; the closed form above is JS's definition with
m = (p + onehot) / 2 summed over classes, computed from log p_y without 0 * log 0. The class
weights are per image over valid pixels (the authors' earlier ``cls_balanced_loss`` divides by H * W,
ignored pixels included; their released ``masked_cross_entropy_balanced``, nmndeep/Robust-Segmentation
``semseg/attacker.py``, takes a fixed per-dataset weight vector instead).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from benchmark.attacks.losses.ce import (
    ce_from_log_probs,
    correct_mask,
    log_probs,
    safe_labels,
)
from benchmark.attacks.parts import LossContext

SEA_LOSSES = ("masked_ce", "balanced_ce", "balanced_masked_ce", "js", "mask_norm")


def class_balance_weights(labels: Tensor, valid: Tensor, num_classes: int) -> Tensor:
    """(N, H, W) float32: 1 - (share of image n's valid pixels that have pixel i's label); 0 if ignored."""
    safe = safe_labels(labels, valid).flatten(1)
    counts = torch.zeros(labels.shape[0], num_classes, device=labels.device)
    counts.scatter_add_(1, safe, valid.flatten(1).float())
    share = counts.gather(1, safe) / valid.flatten(1).sum(dim=1, keepdim=True).clamp(min=1)
    return torch.where(valid, 1.0 - share.view_as(labels), 0.0)


def js_to_onehot(log_p_true: Tensor) -> Tensor:
    """JS(p || onehot(y)) from log p_y (closed form, module docstring); in [0, log 2]."""
    p = log_p_true.exp()
    log_half_sum = torch.log1p(p) - math.log(2.0)  # log((1 + p) / 2)
    # p * log(2p / (1 + p)), exactly 0 at p = 0 (log p may be -inf there)
    p_term = torch.where(p > 0, p * (math.log(2.0) + log_p_true - torch.log1p(p)), 0.0)
    return 0.5 * ((1 - p) * math.log(2.0) + p_term - log_half_sum)


def sea_loss(logits: Tensor, labels: Tensor, ctx: LossContext, loss: str) -> Tensor:
    """One of SEA's pixel losses (``loss`` in SEA_LOSSES), (N, K, H, W), (N, H, W) -> (N, H, W)."""
    valid = ctx.valid
    if loss == "mask_norm":
        z = logits.float()
        z_true = z.gather(1, safe_labels(labels, valid).unsqueeze(1)).squeeze(1)
        out = -z_true / z.norm(dim=1).clamp(min=1e-12)
        return torch.where(correct_mask(logits, labels, valid), out, 0.0)
    log_p = log_probs(logits)
    if loss == "js":
        log_p_true = log_p.gather(1, safe_labels(labels, valid).unsqueeze(1)).squeeze(1)
        return torch.where(valid, js_to_onehot(log_p_true), 0.0)
    ce = ce_from_log_probs(log_p, labels, valid)
    if loss in ("balanced_ce", "balanced_masked_ce"):
        ce = class_balance_weights(labels, valid, logits.shape[1]) * ce
    if loss in ("masked_ce", "balanced_masked_ce"):
        ce = torch.where(correct_mask(logits, labels, valid), ce, 0.0)
    return ce
