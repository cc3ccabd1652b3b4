"""RP-PGD against a re-statement of its authors' code, and the deliberate differences pinned.

Reference: github.com/yuxuan357/RP-PGD, ``tool_train/train_sat_psp.py``, functions ``RPPGD``,
``Attack``, ``masked_cross_entropy`` and ``cossim``; the model interface ``model(x, y, indicate=1) ->
(pred_oh, main_loss, aux_loss, logits, feats)`` of ``model/pspnet.py`` (``PSPNet.forward``), whose
``feats`` is the backbone output, DETACHED (``x.clone().detach()``), resized bilinearly
(align_corners=True) to the logits' size. The functions below were written from reading that code;
the authors' model takes normalised input (ImageNet mean / std), ours normalises inside.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.attacks import build_attack
from benchmark.attacks.rng import PerImageRNG
from benchmark.errors import ConfigError

from .conftest import gens

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)  # their mean_origin / std_origin
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
EPS, STEPS, K = 0.03, 3, 4  # their Attack's defaults; K classes


class Net(nn.Module):
    """The authors' model shape in miniature, on normalised input: a stride-2 "backbone" whose output
    is the feature map, a 1x1 classifier, logits resized to the input (bilinear, align_corners)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.cls = nn.Conv2d(8, K, 1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.6)

    def forward(self, x_norm):
        logits = self.cls(self.backbone(x_norm))
        return F.interpolate(logits, size=x_norm.shape[-2:], mode="bilinear", align_corners=True)


class Ours(nn.Module):
    """The same network behind our contract: [0, 1] input, normalisation inside."""

    default_feature_layer = "net.backbone"

    def __init__(self, net: Net) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net((x - MEAN) / STD)


# ---- re-statement of the authors' code -------------------------------------------------------------

def their_model(net: Net, x_norm, detach: bool = True):
    """PSPNet.forward(x, y, indicate=1) (model/pspnet.py): (pred_oh, logits, feats)."""
    feats = net.backbone(x_norm)
    logits = F.interpolate(net.cls(feats), size=x_norm.shape[-2:], mode="bilinear", align_corners=True)
    feats = feats.clone().detach() if detach else feats  # ``fused_feat = F.interpolate(x.clone().detach(), ...)``
    fused = F.interpolate(feats, size=x_norm.shape[-2:], mode="bilinear", align_corners=True)
    return logits.max(1)[1], logits, fused


def cossim(proto1, proto2):
    """train_sat_psp.py ``cossim``."""
    return (F.cosine_similarity(proto1, proto2, dim=0) + 1) / 2


def masked_cross_entropy(logits, targets, mask):
    """train_sat_psp.py ``masked_cross_entropy``."""
    loss = F.cross_entropy(logits, targets, reduction="none", ignore_index=255)
    return loss[mask].mean() if mask.any() else torch.tensor(0.0)


def their_rppgd(input, target, state, current_iter, total_iter, net, clip_min, clip_max, eps, lamda=0.9,
                detach=True):
    """train_sat_psp.py ``RPPGD``: one step, on normalised images; ``state`` updated in place."""
    input_variable = input.clone().detach().requires_grad_(True)
    pred_oh, result, feats = their_model(net, input_variable, detach)
    state[(pred_oh != target) & (state == 1)] = 3
    loss_T = masked_cross_entropy(result, target, state == 1) if (state == 1).sum() >= 1 else 0.0
    loss_F = masked_cross_entropy(result, target, state == 2) if (state == 2).sum() >= 1 else 0.0
    loss_B = masked_cross_entropy(result, target, state == 3) if (state == 3).sum() >= 1 else 0.0
    lamda1 = 1 - current_iter / (2 * total_iter)
    lamda2 = (current_iter - 1) / (2 * total_iter)
    lamda3 = 1 / (2 * total_iter)
    loss_region = lamda1 * loss_T + lamda2 * loss_B + lamda3 * loss_F

    filter_pred_oh = pred_oh.clone().detach()
    filter_pred_oh[state != 1] = -1
    num_proto = len(torch.unique(filter_pred_oh)) - 1
    cat_list = torch.unique(filter_pred_oh)
    proto_list, loss_inter, loss_intra = [], 0.0, 0.0
    if num_proto > 1:
        for num in cat_list:
            if num == -1:
                continue
            mask = filter_pred_oh == num
            idx = torch.nonzero(mask)
            masked_feats = (feats * mask.unsqueeze(1))[idx[:, 0], :, idx[:, 1], idx[:, 2]]
            proto_list.append(masked_feats.mean(dim=0))
        for num1 in range(num_proto):
            for num2 in range(num_proto):
                if num1 != num2:
                    loss_inter = loss_inter + cossim(proto_list[num1], proto_list[num2])
        loss_inter = loss_inter / (num_proto * (num_proto - 1) / 2)
    if num_proto > 0:
        for num in cat_list:
            if num == -1 or num == 0:
                continue
            mask = filter_pred_oh == num
            idx = torch.nonzero(mask)
            masked_feats = (feats * mask.unsqueeze(1))[idx[:, 0], :, idx[:, 1], idx[:, 2]]
            proto = masked_feats.mean(dim=0)
            cos_sim = (F.cosine_similarity(masked_feats, proto.unsqueeze(0), dim=1) + 1) / 2
            is_high, is_low = cos_sim >= lamda, cos_sim < lamda
            loss_high = cos_sim[is_high].mean() if is_high.sum() > 0 else 0.0
            loss_low = cos_sim[is_low].mean() if is_low.sum() > 0 else 0.0
            loss_intra = loss_low * 0.75 + loss_high * 0.25  # overwritten per class: the last one stays
    loss_our = loss_region * 0.5 + loss_inter * 0.25 + loss_intra * 0.25
    (res,) = torch.autograd.grad(loss_our, input_variable)

    adversarial_example = input.clone().detach() * STD + MEAN
    adversarial_example = adversarial_example + eps * torch.sign(res)
    adversarial_example = torch.min(torch.max(adversarial_example, clip_min), clip_max)
    adversarial_example = torch.clamp(adversarial_example, min=0.0, max=1.0)
    return (adversarial_example - MEAN) / STD


def their_attack(images, target, net, start, eps=EPS, iterations=STEPS, detach=True):
    """train_sat_psp.py ``Attack`` on [0, 1] images, from the pixel-space start ``start``.

    Their start is ``clamp(normalised + U(-eps, eps), 0, 1)`` in normalised space (see
    ``their_start``); here it is given, so both codes start from the same point."""
    clip_min, clip_max = images - eps, images + eps
    state = torch.ones(target.shape)
    adversarial_example = (start - MEAN) / STD
    res0, _, _ = their_model(net, adversarial_example)
    state[res0 != target] = 2
    for i in range(iterations):
        adversarial_example = their_rppgd(adversarial_example, target, state, i, iterations, net, clip_min,
                                          clip_max, eps / iterations, detach=detach).detach()
    return adversarial_example * STD + MEAN


def their_start(images, noise):
    """``Attack``'s random start: noise U(-eps, eps) added to the NORMALISED image, clamped to [0, 1]
    there; returned in pixel space."""
    return torch.clamp((images - MEAN) / STD + noise, 0, 1) * STD + MEAN


# ---- helpers ---------------------------------------------------------------------------------------

def case(n: int = 1, seed: int = 0, h: int = 13, w: int = 17):
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, h, w, generator=gen)
    net = Net(seed=seed + 1).eval()
    with torch.no_grad():  # labels: mostly the clean prediction (large T region), some flips, some ignored
        labels = net((images - MEAN) / STD).argmax(1)
    flip = torch.rand(n, h, w, generator=gen) < 0.25
    labels = torch.where(flip, torch.randint(0, K, (n, h, w), generator=gen), labels)
    labels[:, :2, :3] = 255
    return net, images, labels


def our_start(images, seed: int):
    """Our core's random start for per-image generators ``gens(n, seed)``: Pi(x + (2u - 1) eps)."""
    rng = PerImageRNG(gens(images.shape[0], seed), images.shape[0], images.device, images.dtype)
    noise = (2 * rng.uniform(tuple(images.shape[1:])) - 1) * EPS
    return torch.max(torch.min(images + noise, (images + EPS).clamp(max=1)), (images - EPS).clamp(min=0))


def ours(net, images, labels, seed: int = 3, **settings):
    attack = build_attack("rppgd", eps=EPS, steps=STEPS, **settings)
    return attack(Ours(net), images, labels, generator=gens(images.shape[0], seed))


# ---- where ours follows their code -----------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_the_authors_attack_from_the_same_start(seed):
    """Default settings (prototype term without gradient, as their detached features make it):
    the adversarial image equals theirs, ignored pixels (counted in their F region) included."""
    net, images, labels = case(seed=seed)
    mine = ours(net, images, labels, seed=seed)
    theirs = their_attack(images, labels, net, our_start(images, seed))
    assert (mine - theirs).abs().max() <= 1e-6
    assert (mine - images).abs().max() > EPS / 2  # the case moves the image


def test_equals_the_authors_attack_without_random_start():
    net, images, labels = case(seed=4)
    mine = ours(net, images, labels, random_start=False)
    assert (mine - their_attack(images, labels, net, images)).abs().max() <= 1e-6


@pytest.mark.parametrize("seed", [0, 1])
def test_prototype_grad_equals_the_authors_attack_with_undetached_features(seed):
    """``prototype_grad=True`` is their code with the features' ``.detach()`` removed (inter over
    ordered pairs / (m (m - 1) / 2), intra of the last class only, class 0 skipped)."""
    net, images, labels = case(seed=seed)
    mine = ours(net, images, labels, seed=seed, prototype_grad=True)
    theirs = their_attack(images, labels, net, our_start(images, seed), detach=False)
    assert (mine - theirs).abs().max() <= 1e-6
    # and the prototype gradient changes the result (so the comparison above tests it)
    assert (mine - their_attack(images, labels, net, our_start(images, seed))).abs().max() > 1e-3


def test_defaults_follow_their_attack_but_eps_is_the_library_default():
    s = build_attack("rppgd").to_dict()
    assert (s["steps"], s["random_start"], s["prototype_grad"], s["intra_split"]) == (3, True, False, 0.9)
    assert s["alpha"] == pytest.approx(s["eps"] / 3) and s["eps"] == pytest.approx(8 / 255)  # theirs: 0.03


# ---- deliberate differences ------------------------------------------------------------------------

def test_statistics_are_per_image_not_per_batch():
    """Their region means and prototypes are over the batch; ours per image: our batch result equals
    their code run image by image, and differs from their batch run."""
    net, images, labels = case(n=2, seed=5)
    for proto in (False, True):
        mine = ours(net, images, labels, seed=7, prototype_grad=proto)
        start = our_start(images, 7)
        alone = torch.cat([their_attack(images[i:i + 1], labels[i:i + 1], net, start[i:i + 1], detach=not proto)
                           for i in range(2)])
        assert (mine - alone).abs().max() <= 1e-6
        batch = their_attack(images, labels, net, start, detach=not proto)
        assert (mine - batch).abs().max() > 1e-3


def test_random_start_is_drawn_in_pixel_space():
    """Their start adds U(-eps, eps) to the normalised image and clamps it to [0, 1] there, which puts
    every pixel in [mean, mean + std] (far outside the eps-ball) until the first step projects it;
    ours is Pi(x + U(-eps, eps)) in pixel space. With mean 0 and std 1 the two are the same draw."""
    _, images, _ = case(seed=6)
    noise = (2 * torch.rand(images.shape, generator=torch.Generator().manual_seed(0)) - 1) * EPS
    theirs = their_start(images, noise)
    assert (theirs - images).abs().max() > 5 * EPS
    assert (theirs >= MEAN - 1e-6).all() and (theirs <= MEAN + STD + 1e-6).all()
    mine = torch.max(torch.min(images + noise, (images + EPS).clamp(max=1)), (images - EPS).clamp(min=0))
    assert (mine - images).abs().max() <= EPS + 1e-7
    assert torch.equal(torch.clamp(images + noise, 0, 1), mine)  # their formula at mean 0, std 1


def test_regions_persist_across_steps_and_the_boundary_weight_ramps():
    """B pixels keep their state and get (t - 1) / 2T; T pixels 1 - t / 2T; F pixels 1 / 2T."""
    from benchmark.attacks.bases.rppgd import region_loss
    from benchmark.attacks.parts import LossContext

    labels = torch.tensor([[[0, 1, 1, 255]]])
    valid = labels != 255
    state: dict = {}
    start = torch.tensor([[[[5.0, 0, 0, 0]], [[0.0, 5, -5, 0]]]])  # pixel 2 wrong at the start
    fooled = torch.tensor([[[[5.0, 5, 0, 0]], [[0.0, 0, -5, 0]]]])  # pixel 1 becomes wrong
    region_loss(start, labels, LossContext(0, 4, valid, state=state))
    region_loss(fooled, labels, LossContext(1, 4, valid, state=state))
    region_loss(start, labels, LossContext(2, 4, valid, state=state))  # pixel 1 correct again: still B
    assert state["true"].tolist() == [[[True, False, False, False]]]
    assert state["boundary"].tolist() == [[[False, True, False, False]]]
    assert state["fooled"].tolist() == [[[False, False, True, True]]]  # the ignored pixel is F, as theirs
    ce = F.cross_entropy(start, torch.tensor([[[0, 1, 1, 0]]]), reduction="none")[0, 0]
    value = region_loss(start, labels, LossContext(3, 4, valid, state=dict(state)))
    expected = (1 - 3 / 8) * ce[0] + (2 / 8) * ce[1] + (1 / 8) * ce[2] / 2  # F's mean counts the ignored pixel
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)


def test_geometry_transforms_are_refused():
    with pytest.raises(ConfigError, match="keeps per-pixel regions across steps"):
        build_attack("rppgd+di")
    assert build_attack("rppgd+mi").name == "rppgd+mi"


def test_without_prototype_grad_the_objective_is_half_the_region_loss():
    """The prototype term has no gradient in the authors' attack; it is left out of the value too."""
    from benchmark.attacks.bases.rppgd import region_loss, rppgd_loss
    from benchmark.attacks.parts import LossContext

    net, images, labels = case(seed=8)
    logits = Ours(net)(images)
    valid = labels != 255
    value = rppgd_loss(logits, labels, LossContext(0, 3, valid, state={}))
    assert torch.equal(value, 0.5 * region_loss(logits, labels, LossContext(0, 3, valid, state={})))


def test_core_hook_state_is_per_run_shared_within_a_step_and_features_come_with_the_logits():
    """The core's hook (core.py docstring): one fresh ``ctx.state`` per run, handed to every evaluation
    of the run (here SI's copies), and ``ctx.features`` of the plan's layer from the same forward."""
    from benchmark.attacks import IterativeSettings, SISettings, core
    from benchmark.attacks.modifiers.si import ScaleInvariance

    seen = []

    def recording(logits, labels, ctx):
        calls = ctx.state.setdefault("calls", [])
        seen.append((tuple(calls), ctx.step, tuple(ctx.features.shape)))
        calls.append(ctx.step)
        return (logits.float().mean(dim=(1, 2, 3)) + ctx.features.mean(dim=(1, 2, 3)))

    settings = IterativeSettings(eps=EPS, alpha=None, steps=2)
    plan = core.Plan(settings, image_loss=recording, loss_features=True,
                     pixel_transform=ScaleInvariance(SISettings(scale_copies=2), settings))
    net, images, labels = case(seed=9)
    for _ in range(2):
        core.run(plan, Ours(net), images, labels, gens(1))
    # each run starts from an empty state, which every copy and step of the run then shares
    assert [(before, t) for before, t, _ in seen] == [((), 0), ((0,), 0), ((0, 0), 1), ((0, 0, 1), 1)] * 2
    assert all(shape == (1, 8, 7, 9) for _, _, shape in seen)  # net.backbone's output (stride 2)
