"""FSPGD feature loss: lower the local and the contextual similarity of intermediate features.

Paper: "FSPGD: Rethinking Black-box Attacks on Semantic Segmentation", Park, Kim, Lee, Lee,
arXiv:2502.01262. With clean features F (N, C, h, w) and adversarial features A of the same layer,
F_hat = F / ||F||_2 per position, P = h * w positions and lambda_t = t / T:

    local_n   = (1 / P) sum_i cos(F_i, A_i)
    W_ij      = 1[i != j and F_hat_i . F_hat_j > cos(pi / c)]          (clean-similar pairs)
    context_n = (sum_ij W_ij <A_i, A_j>) / (2 |W|)                    (0 when |W| = 0)
    J_n       = -lambda_t local_n - (1 - lambda_t) context_n           (ascended)

``context_features="raw"`` uses A as it is in the context term (the authors' loss function,
KU-AIVS/FSPGD ``fspgd/attacks.py`` ``Attack.fspgd``, applied to unnormalised features);
``"normalised"`` uses A / ||A|| per position, which is what the authors' attack loop feeds that
function (``implementation/model/utils/trainer.py`` normalises the hooked adversarial feature map
before the call). Statistics are per image (the authors' code averages the local term and counts |W|
over the batch; they attack one image at a time). Their pair mask removes the diagonal before the
threshold, so for c <= 2 (cos(pi / c) < 0 in float32) it keeps i = j; here i != j always. Labels
are not used: FSPGD is label-free.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmark.attacks.bases.pgd import PGD_DEFAULTS
from benchmark.attacks.entries import AttackEntry
from benchmark.attacks.parts import LossContext
from benchmark.attacks.settings import IterativeSettings, choice, fail, real


@dataclass(frozen=True)
class FSPGDSettings(IterativeSettings):
    """FSPGD: PGD on a feature-similarity loss of an intermediate layer of the source.

    Paper: "FSPGD: Rethinking Black-box Attacks on Semantic Segmentation", Park et al.,
    arXiv:2502.01262.

    Args:
        (all of IterativeSettings; registry defaults alpha 2/255, steps 20, random start)
        layer: the source layer, a module path such as "backbone.layer3" (None: the model's
            ``default_feature_layer``; `benchmark models --layers MODEL` lists the names).
        similarity_c: c > 1 of the pair threshold cos(pi / c) (default 3: cos > 1/2).
        context_features: "raw" (the authors' code) | "normalised".
    """

    steps: int = 20
    layer: str | None = None
    similarity_c: float = 3.0
    context_features: str = "raw"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.layer is not None and (not isinstance(self.layer, str) or not self.layer):
            fail("layer", self.layer, "must be a module path such as 'backbone.layer3', or null")
        c = real("similarity_c", self.similarity_c)
        if c <= 1:
            fail("similarity_c", self.similarity_c, "must be > 1 (the threshold is cos(pi / c))")
        object.__setattr__(self, "similarity_c", c)
        choice("context_features", self.context_features, CONTEXT_FEATURES)


CONTEXT_FEATURES = ("raw", "normalised")


def similar_pairs(clean: Tensor, c: float) -> Tensor:
    """(N, P, P) bool W of clean-similar position pairs, diagonal excluded."""
    f = F.normalize(clean.flatten(2), dim=1)  # (N, C, P)
    sim = f.transpose(1, 2) @ f
    eye = torch.eye(sim.shape[-1], dtype=torch.bool, device=sim.device)
    return (sim > math.cos(math.pi / c)) & ~eye


def fspgd_loss(adv: Tensor, clean: Tensor, ctx: LossContext, c: float = 3.0,
               context_features: str = "raw") -> Tensor:
    """(N,) FSPGD objective of adversarial features ``adv`` against ``clean`` (both (N, C, h, w))."""
    if adv.shape != clean.shape or adv.dim() != 4:
        raise ValueError(f"feature shapes differ or are not (N, C, h, w): {tuple(adv.shape)} vs {tuple(clean.shape)}")
    lam = ctx.step / ctx.steps
    a = adv.flatten(2)  # (N, C, P)
    local = F.cosine_similarity(clean.flatten(2), a, dim=1, eps=1e-8).mean(dim=1)
    pairs = similar_pairs(clean, c)
    if context_features == "normalised":
        a = F.normalize(a, dim=1)
    gram = a.transpose(1, 2) @ a
    count = pairs.flatten(1).sum(dim=1)
    context = torch.where(pairs, gram, 0.0).flatten(1).sum(dim=1) / (2 * count.clamp(min=1))
    return -lam * local - (1 - lam) * context


METHODS = (AttackEntry(
    "fspgd", FSPGDSettings, lambda s: None,
    paper="FSPGD: Rethinking Black-box Attacks on Semantic Segmentation, Park et al., arXiv:2502.01262",
    defaults={**PGD_DEFAULTS, "steps": 20}, uses_labels=False,
    make_feature_loss=lambda s: functools.partial(fspgd_loss, c=s.similarity_c, context_features=s.context_features),
),)
