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

import functools
from dataclasses import dataclass

import torch
from torch import Tensor

from benchmark.attacks.bases.pgd import BIM_DEFAULTS
from benchmark.attacks.core import TargetSpec
from benchmark.attacks.entries import AttackEntry
from benchmark.attacks.losses.ce import correct_mask, safe_labels
from benchmark.attacks.parts import LossContext
from benchmark.attacks.rules.normalised import LinfNormalisedStep
from benchmark.attacks.settings import IterativeSettings, choice, target_fields


@dataclass(frozen=True)
class DAGSettings(IterativeSettings):
    """DAG: dense targeted attack on the active pixels with an L-inf normalised step, projected.

    Paper: "Adversarial Examples for Semantic Segmentation and Object Detection", Xie et al.,
    ICCV 2017, arXiv:1703.08603.

    Args:
        (all of IterativeSettings; registry defaults alpha 2/255 = the largest pixel change of one
        step, steps 20, no random start)
        target_rule: "permutation" (a random K-cycle of the classes per image, default) | "class".
        target_class: the class of ``target_rule="class"``.
        active_set: "correct" (still predicted as the label; the paper) | "not_target".
    """

    steps: int = 20
    random_start: bool = False
    target_rule: str = "permutation"
    target_class: int = 0
    active_set: str = "correct"

    def __post_init__(self) -> None:
        super().__post_init__()
        target_fields(self)
        choice("active_set", self.active_set, ACTIVE_SETS)


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


def _own_target(settings: DAGSettings) -> TargetSpec:
    return TargetSpec(settings.target_rule, settings.target_class)


# Revision 2: the not_target active set subtracts the predicted class's logit (the authors' code).
METHODS = (AttackEntry(
    "dag", DAGSettings, lambda s: functools.partial(dag_loss, active_set=s.active_set),
    paper="Adversarial Examples for Semantic Segmentation and Object Detection, Xie et al., ICCV 2017, "
          "arXiv:1703.08603",
    defaults={**BIM_DEFAULTS, "steps": 20}, make_rule=lambda s: LinfNormalisedStep(), target=_own_target,
    revision=lambda s: 2 if s.active_set == "not_target" else 1,
),)
