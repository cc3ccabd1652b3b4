"""DAG pixel loss: the target-minus-prediction logit difference on the active pixels.

Paper: "Adversarial Examples for Semantic Segmentation and Object Detection", Xie, Wang, Zhang, Zhou,
Xie, Yuille, ICCV 2017, arXiv:1703.08603.

With t_i the pixel's adversarial target (``ctx.targets``) and c_i its current prediction (detached:
the label where the label's logit is a maximum, else the argmax),

    l_i = a_i (z_{t_i} - z_{c_i}),   a_i = 1 on the active set, else 0 (detached)

Active set (``active_set``): "correct" = valid pixels still predicted as their label (the paper's
T_m: pixels whose prediction is not yet changed; there c_i = y_i, the paper's r_m), "not_target" =
valid pixels not yet predicted as their target (the authors' code, cihangxie/DAG
``forward_and_back_propogation_seg.m``: the gradient of the target logit minus the gradient of the
currently predicted class's logit over the pixels not at their target). The L-inf normalised step is
the rule.
"""

from __future__ import annotations

import torch
from torch import Tensor

from benchmark.attacks.losses.ce import safe_labels
from benchmark.attacks.losses.segpgd import correct_mask
from benchmark.attacks.parts import LossContext

ACTIVE_SETS = ("correct", "not_target")


def dag_loss(logits: Tensor, labels: Tensor, ctx: LossContext, active_set: str = "correct") -> Tensor:
    """DAG pixel loss, (N, K, H, W), (N, H, W) -> (N, H, W), 0 at ignored and inactive pixels."""
    targets, valid = ctx.targets, ctx.valid
    z = logits.float()
    correct = correct_mask(logits, labels, valid)
    if active_set == "correct":
        active, current = correct, labels  # active pixels are predicted as their label
    else:
        active = valid & ~correct_mask(logits, targets, valid)
        # the label where it is predicted (ties count as predicted, as in correct_mask), else the argmax
        current = torch.where(correct, labels, z.detach().argmax(dim=1))
    z_target = z.gather(1, safe_labels(targets, valid).unsqueeze(1)).squeeze(1)
    z_current = z.gather(1, safe_labels(current, valid).unsqueeze(1)).squeeze(1)
    return torch.where(active, z_target - z_current, 0.0)
