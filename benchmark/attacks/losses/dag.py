"""DAG pixel loss: the target-minus-label logit difference on the active pixels.

Paper: "Adversarial Examples for Semantic Segmentation and Object Detection", Xie, Wang, Zhang, Zhou,
Xie, Yuille, ICCV 2017, arXiv:1703.08603.

With t_i the pixel's adversarial target (``ctx.targets``) and y_i its label,

    l_i = a_i (z_{t_i} - z_{y_i}),   a_i = 1 on the active set, else 0 (detached)

Active set (``active_set``): "correct" = valid pixels still predicted as their label (the paper's
T_m: pixels whose prediction is not yet changed), "not_target" = valid pixels not yet predicted as
their target. The gradient of sum_i l_i is the paper's r_m; the L-inf normalised step is the rule.
"""

from __future__ import annotations

import torch
from torch import Tensor

from benchmark.attacks.losses.ce import safe_labels
from benchmark.attacks.losses.segpgd import correct_mask
from benchmark.attacks.parts import LossContext

ACTIVE_SETS = ("correct", "not_target")


def active_mask(logits: Tensor, labels: Tensor, targets: Tensor, valid: Tensor, active_set: str) -> Tensor:
    """(N, H, W) bool, no grad: the pixels DAG still pushes."""
    if active_set == "correct":
        return correct_mask(logits, labels, valid)
    return valid & ~correct_mask(logits, targets, valid)


def dag_loss(logits: Tensor, labels: Tensor, ctx: LossContext, active_set: str = "correct") -> Tensor:
    """DAG pixel loss, (N, K, H, W), (N, H, W) -> (N, H, W), 0 at ignored and inactive pixels."""
    targets, valid = ctx.targets, ctx.valid
    z = logits.float()
    z_target = z.gather(1, safe_labels(targets, valid).unsqueeze(1)).squeeze(1)
    z_label = z.gather(1, safe_labels(labels, valid).unsqueeze(1)).squeeze(1)
    active = active_mask(logits, labels, targets, valid, active_set)
    return torch.where(active, z_target - z_label, 0.0)
