"""CosPGD pixel loss: CE weighted by the cosine between the softmax and the one-hot label.

Paper: "CosPGD: an efficient white-box adversarial attack for pixel-wise prediction tasks",
Agnihotri, Jung, Keuper, arXiv:2302.02213 (untargeted form only).

    w_i = cos(p_i, onehot(y_i)) = p_i[y_i] / ||p_i||_2   (detached; 0 on ignored pixels)
    l_i = w_i L_i

Ignored pixels are masked, never remapped to a class.
"""

from __future__ import annotations

import torch
from torch import Tensor

from benchmark.attacks.bases.pgd import PGD_DEFAULTS
from benchmark.attacks.entries import AttackEntry
from benchmark.attacks.losses.ce import pixel_ce, safe_labels
from benchmark.attacks.parts import LossContext
from benchmark.attacks.settings import IterativeSettings


def cospgd_weights(logits: Tensor, labels: Tensor, valid: Tensor) -> Tensor:
    """(N, H, W) float32 detached weights p[y] / ||p||_2, 0 where not valid."""
    with torch.no_grad():
        p = logits.detach().float().softmax(dim=1)
        p_true = p.gather(1, safe_labels(labels, valid).unsqueeze(1)).squeeze(1)
        w = p_true / p.norm(dim=1)  # ||p||_2 >= 1/sqrt(K) > 0
        return torch.where(valid, w, 0.0)


def cospgd_loss(logits: Tensor, labels: Tensor, ctx: LossContext) -> Tensor:
    """CosPGD pixel loss, (N, K, H, W), (N, H, W) -> (N, H, W), 0 at ignored pixels."""
    return cospgd_weights(logits, labels, ctx.valid) * pixel_ce(logits, labels, ctx.valid)


METHODS = (AttackEntry(
    "cospgd", IterativeSettings, lambda s: cospgd_loss,
    paper="CosPGD: an efficient white-box adversarial attack for pixel-wise prediction tasks, Agnihotri et al., "
          "ICML 2024, arXiv:2302.02213",
    defaults={**PGD_DEFAULTS, "steps": 20},
),)
