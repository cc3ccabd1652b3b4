"""RP-PGD image loss: region-weighted CE over pixel states kept across steps, plus a prototype term.

Paper: "A Region-and-Prototype-Based Adversarial Attack to Enhance the Robustness of Segmentation
Models", AAAI 2025 (ojs.aaai.org article 33122); authors' code: github.com/yuxuan357/RP-PGD
(``tool_train/train_sat_psp.py``: ``RPPGD``, ``Attack``, ``masked_cross_entropy``, ``cossim``).

Regions of image n (kept in ``ctx.state``, set from the prediction at the first evaluation of step 0,
i.e. at the random start, and moved once per step at its first evaluation):

    T: valid pixels predicted correctly at the start and at every step since;
    F: the other pixels at the start (ignored pixels included, where CE is 0: the authors' ``state``
       marks every pixel whose prediction differs from the label, 255 included, and their masked mean
       counts them);
    B: T pixels that became wrong at some step; they stay B.

With CE_R the mean CE over region R of the image (0 for an empty region) and t = 0, ..., T - 1:

    region_n = (1 - t / 2T) CE_T + ((t - 1) / 2T) CE_B + (1 / 2T) CE_F

The prototype term reads the features of the same forward (``ctx.features``), resized bilinearly
(align_corners) to the label size. On the T pixels, grouped by class (T pixels are predicted as their
label), p_c is the mean feature of class c and s(a, b) = (cos(a, b) + 1) / 2:

    inter_n = sum over ordered pairs c != d of s(p_c, p_d) / (m (m - 1) / 2)   (m classes; 0 if m < 2)
    intra_n = 0.75 mean{s(f_i, p_c*) < split} + 0.25 mean{s(f_i, p_c*) >= split},  i of class c*

where c* is the largest class present (their loop overwrites ``loss_intra`` per class and skips class
0, so only the last class of ``torch.unique`` counts; 0 when that is class 0). The image's objective,
ascended, is

    J_n = 0.5 region_n + 0.25 inter_n + 0.25 intra_n.

The authors' model detaches the features it returns (``model/pspnet.py``: ``fused_feat =
F.interpolate(x.clone().detach(), ...)``), so in their attack the prototype term has no gradient and
only the region term moves the image: ``prototype_grad=False`` (default) reproduces that by leaving the
constant prototype term out (J_n = 0.5 region_n); ``True`` differentiates through the features.
Statistics are per image; the authors' means and prototypes are over the batch.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmark.attacks.entries import AttackEntry
from benchmark.attacks.losses.ce import correct_mask, pixel_ce, safe_labels
from benchmark.attacks.parts import LossContext
from benchmark.attacks.settings import IterativeSettings, boolean, fail, unit_interval


@dataclass(frozen=True)
class RPPGDSettings(IterativeSettings):
    """RP-PGD: sign steps on region-weighted CE over pixel states kept across steps, plus prototypes.

    Paper: "A Region-and-Prototype-Based Adversarial Attack to Enhance the Robustness of Segmentation
    Models", AAAI 2025 (ojs.aaai.org article 33122); authors' code github.com/yuxuan357/RP-PGD
    (``tool_train/train_sat_psp.py``, ``RPPGD`` and ``Attack``; loss in ``losses/rppgd.py``).

    Args:
        (all of IterativeSettings; registry defaults: alpha None = eps / steps, steps 3, random
        start, as the authors' ``Attack``; eps stays the library's 8/255 -- theirs is 0.03)
        layer: the source layer the prototype term reads, a module path (None: the model's
            ``default_feature_layer``; the authors use the last backbone stage, ``backbone.layer4``
            of a ResNet); read only when ``prototype_grad`` is true.
        prototype_grad: differentiate the prototype term through the features (default False: the
            authors' model detaches its features, so their prototype term moves nothing).
        intra_split: the threshold on (cos + 1) / 2 that splits the intra-class term into its low
            (weight 0.75) and high (0.25) part, in [0, 1], unitless (default 0.9, their ``lamda``).
    """

    alpha: float | None = None
    steps: int = 3
    layer: str | None = None
    prototype_grad: bool = False
    intra_split: float = 0.9

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.layer is not None and (not isinstance(self.layer, str) or not self.layer):
            fail("layer", self.layer, "must be a module path such as 'backbone.layer4', or null")
        boolean("prototype_grad", self.prototype_grad)
        object.__setattr__(self, "intra_split", unit_interval("intra_split", self.intra_split))


REGION_WEIGHT, INTER_WEIGHT, INTRA_WEIGHT = 0.5, 0.25, 0.25


def update_regions(logits: Tensor, labels: Tensor, ctx: LossContext) -> tuple[Tensor, Tensor, Tensor]:
    """(T, B, F) bool (N, H, W) region masks after this step's update of ``ctx.state``."""
    state = ctx.state
    correct = correct_mask(logits, labels, ctx.valid)
    if "true" not in state:
        state.update(true=correct, boundary=torch.zeros_like(correct), fooled=~correct, step=ctx.step)
    elif ctx.step > state["step"]:
        flipped = state["true"] & ~correct
        state.update(true=state["true"] & ~flipped, boundary=state["boundary"] | flipped, step=ctx.step)
    return state["true"], state["boundary"], state["fooled"]


def region_mean(values: Tensor, mask: Tensor) -> Tensor:
    """(N,) mean of ``values`` over ``mask`` per image, 0 where the mask is empty."""
    return torch.where(mask, values, 0.0).sum(dim=(1, 2)) / mask.sum(dim=(1, 2)).clamp(min=1)


def region_loss(logits: Tensor, labels: Tensor, ctx: LossContext) -> Tensor:
    """(N,) lamda1 CE_T + lamda2 CE_B + lamda3 CE_F at step ``ctx.step``."""
    true, boundary, fooled = update_regions(logits, labels, ctx)
    ce = pixel_ce(logits, labels, ctx.valid)
    t, steps = ctx.step, ctx.steps
    return ((1 - t / (2 * steps)) * region_mean(ce, true) + ((t - 1) / (2 * steps)) * region_mean(ce, boundary)
            + (1 / (2 * steps)) * region_mean(ce, fooled))


def _cos01(a: Tensor, b: Tensor) -> Tensor:
    """(cos(a, b) + 1) / 2 along the last dimension (torch's eps 1e-8 on the norm product)."""
    dot = (a * b).sum(dim=-1)
    return (dot / (a.norm(dim=-1) * b.norm(dim=-1)).clamp(min=1e-8) + 1) / 2


def prototype_loss(features: Tensor, labels: Tensor, true: Tensor, classes: int,
                   intra_split: float) -> tuple[Tensor, Tensor]:
    """(inter, intra), each (N,), on features (N, C, H, W) at label size over the T pixels."""
    onehot = F.one_hot(safe_labels(labels, true), classes).permute(0, 3, 1, 2).to(features.dtype)
    weights = onehot * true.unsqueeze(1)  # (N, K, H, W): 1 where a T pixel has class k
    counts = weights.sum(dim=(2, 3))  # (N, K)
    present = counts > 0
    protos = torch.einsum("nkhw,nchw->nkc", weights, features) / counts.clamp(min=1).unsqueeze(-1)
    m = present.sum(dim=1)
    pairs = present.unsqueeze(2) & present.unsqueeze(1)
    pairs &= ~torch.eye(classes, dtype=torch.bool, device=features.device)
    sim = _cos01(protos.unsqueeze(2), protos.unsqueeze(1))  # (N, K, K)
    inter = torch.where(pairs, sim, 0.0).sum(dim=(1, 2)) / (m * (m - 1) / 2).clamp(min=1)
    # the last class present (the authors' loop keeps only its intra term); none when it is class 0
    ids = torch.arange(classes, device=features.device)
    last = torch.where(present, ids, -1).amax(dim=1)  # (N,)
    members = true & (labels == last[:, None, None]) & (last > 0)[:, None, None]
    proto = protos.gather(1, last.clamp(min=0)[:, None, None].expand(-1, 1, protos.shape[-1]))  # (N, 1, C)
    # (cos(f_i, p) + 1) / 2 per pixel, without an (N, H, W, C) intermediate
    dot = torch.einsum("nchw,nc->nhw", features, proto[:, 0])
    s = (dot / (features.norm(dim=1) * proto[:, 0].norm(dim=-1)[:, None, None]).clamp(min=1e-8) + 1) / 2
    high, low = members & (s >= intra_split), members & (s < intra_split)
    intra = 0.75 * region_mean(s, low) + 0.25 * region_mean(s, high)
    return inter, intra


def rppgd_loss(logits: Tensor, labels: Tensor, ctx: LossContext, prototypes: bool = False,
               intra_split: float = 0.9) -> Tensor:
    """(N,) RP-PGD objective at step ``ctx.step`` (module docstring); ``prototypes`` adds the
    prototype term on ``ctx.features``."""
    value = REGION_WEIGHT * region_loss(logits, labels, ctx)
    if not prototypes:
        return value
    features = ctx.features
    if features.shape[-2:] != labels.shape[-2:]:
        features = F.interpolate(features, size=labels.shape[-2:], mode="bilinear", align_corners=True)
    inter, intra = prototype_loss(features, labels, ctx.state["true"], logits.shape[1], intra_split)
    return value + INTER_WEIGHT * inter + INTRA_WEIGHT * intra


METHODS = (AttackEntry(
    "rppgd", RPPGDSettings, lambda s: None,
    paper="A Region-and-Prototype-Based Adversarial Attack to Enhance the Robustness of Segmentation Models, "
          "AAAI 2025",
    defaults={"alpha": None, "steps": 3, "random_start": True},
    make_image_loss=lambda s: functools.partial(rppgd_loss, prototypes=s.prototype_grad, intra_split=s.intra_split),
    loss_features=lambda s: s.prototype_grad,
),)
