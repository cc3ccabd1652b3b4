"""Pixel-loss unit tests on hand-made logits (attacks.md section 6, items 6 and 10)."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from benchmark.attacks import TranSegPGDSettings
from benchmark.attacks.bases.cospgd import cospgd_loss
from benchmark.attacks.bases.segpgd import segpgd_loss
from benchmark.attacks.bases.transegpgd import pixel_kl, transegpgd_loss, upper_set
from benchmark.attacks.losses.ce import ce_loss
from benchmark.attacks.parts import LossContext


def ce_by_hand(logits, labels):
    """-log softmax at the label, 0 where ignored (written independently of the library)."""
    logp = logits.log_softmax(dim=1)
    out = torch.zeros(labels.shape)
    for idx in torch.nonzero(labels != 255).tolist():
        n, i, j = idx
        out[n, i, j] = -logp[n, labels[n, i, j], i, j]
    return out


def random_case(seed=0, n=2, k=3, h=3, w=5):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, h, w, generator=gen) * 2
    clean = torch.randn(n, k, h, w, generator=gen) * 2
    labels = torch.randint(0, k, (n, h, w), generator=gen)
    labels[:, 0, :2] = 255
    return logits, clean, labels


def ctx_for(labels, step, steps, clean=None):
    return LossContext(step=step, steps=steps, valid=labels != 255, clean_logits=clean)


# SegPGD and CosPGD ----------------------------------------------------------------------------

def hand_case():
    # One image, 4 pixels in a row, K = 3: correct, fooled, ignored, correct.
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6], [0.2, 0.1, 0.7]])
    logits = probs.log().T.reshape(1, 3, 1, 4)
    labels = torch.tensor([[[0, 0, 255, 2]]])
    return probs, logits, labels


def test_segpgd_weights_on_hand_made_logits():
    probs, logits, labels = hand_case()
    ce = -torch.tensor([math.log(0.5), math.log(0.1), 0.0, math.log(0.7)])
    loss = segpgd_loss(logits, labels, ctx_for(labels, step=2, steps=5))  # lambda = 2 / 10
    expected = torch.tensor([0.8, 0.2, 0.0, 0.8]) * ce
    assert torch.allclose(loss.flatten(), expected, atol=1e-6)
    loss1 = segpgd_loss(logits, labels, ctx_for(labels, step=2, steps=5), lambda_offset=1)  # 3 / 10
    assert torch.allclose(loss1.flatten(), torch.tensor([0.7, 0.3, 0.0, 0.7]) * ce, atol=1e-6)


def test_segpgd_at_half_is_half_ce():
    logits, _, labels = random_case()
    half = segpgd_loss(logits, labels, ctx_for(labels, step=3, steps=4), lambda_offset=1)  # (3+1)/8
    assert torch.allclose(half, 0.5 * ce_by_hand(logits, labels), atol=1e-6)


def test_cospgd_weights_on_hand_made_logits():
    probs, logits, labels = hand_case()
    loss = cospgd_loss(logits, labels, ctx_for(labels, 0, 1))
    w = [0.5 / math.sqrt(0.38), 0.1 / math.sqrt(0.46), 0.0, 0.7 / math.sqrt(0.54)]
    ce = [-math.log(0.5), -math.log(0.1), 0.0, -math.log(0.7)]
    assert torch.allclose(loss.flatten(), torch.tensor([a * b for a, b in zip(w, ce)]), atol=1e-6)


# Ignore-index at loss level, for every pixel loss ---------------------------------------------

LOSSES = {
    "ce": ce_loss,
    "segpgd": functools.partial(segpgd_loss, lambda_offset=0),
    "cospgd": cospgd_loss,
    **{
        f"transegpgd-{key}": functools.partial(transegpgd_loss, settings=TranSegPGDSettings(steps=4, **opts))
        for key, opts in {
            "stage1": {"stage1_steps": 4},
            "confident": {"stage1_steps": 4, "stage1_split": "confident"},
            "mean": {"stage1_steps": 0},
            "median": {"stage1_steps": 0, "stage2_split": "median"},
            "topk": {"stage1_steps": 0, "stage2_split": "topk", "topk_fraction": 0.3},
            "kl-adv": {"stage1_steps": 0, "kl_direction": "adv_clean", "stage2_loss": "kl"},
            "ce_kl": {"stage1_steps": 0, "stage2_loss": "ce_kl", "transferable_side": "low_kl"},
            "label": {"stage1_steps": 0, "kl_reference": "label"},
            "fooled": {"stage_switch": "all_fooled", "weight_horizon": "total"},
        }.items()
    },
}


@pytest.mark.parametrize("name", list(LOSSES))
def test_ignored_pixels_have_zero_loss_and_do_not_influence_valid_ones(name):
    loss = LOSSES[name]
    logits, clean, labels = random_case()
    ignored = (labels == 255).unsqueeze(1).expand_as(logits)
    before = loss(logits, labels, ctx_for(labels, 2, 4, clean))
    changed = torch.where(ignored, torch.full_like(logits, 40.0) * torch.randn_like(logits), logits)
    after = loss(changed, labels, ctx_for(labels, 2, 4, clean))
    assert (before[labels == 255] == 0).all() and (after[labels == 255] == 0).all()
    assert torch.equal(before[labels != 255], after[labels != 255])
    # A fully ignored image: zero loss, no NaN.
    empty = labels.clone()
    empty[0] = 255
    out = loss(logits, empty, ctx_for(empty, 2, 4, clean))
    assert torch.isfinite(out).all() and (out[0] == 0).all()


# TranSegPGD -------------------------------------------------------------------------------------

def tsp(**opts):
    return TranSegPGDSettings(steps=4, stage1_steps=2, **opts)


def correct_by_hand(logits, labels):
    return (logits.argmax(1) == labels) & (labels != 255)


def test_stage1_is_segpgd_ramp_over_stage_steps():
    logits, clean, labels = random_case()
    ce, correct = ce_by_hand(logits, labels), correct_by_hand(logits, labels)
    loss = transegpgd_loss(logits, labels, ctx_for(labels, 1, 4, clean), tsp())  # gamma = 1 / 4
    assert torch.allclose(loss, torch.where(correct, 0.75, 0.25) * ce, atol=1e-6)
    total = transegpgd_loss(logits, labels, ctx_for(labels, 1, 4, clean), tsp(weight_horizon="total"))  # 1 / 8
    assert torch.allclose(total, torch.where(correct, 7 / 8, 1 / 8) * ce, atol=1e-6)
    const = transegpgd_loss(logits, labels, ctx_for(labels, 1, 4, clean), tsp(stage1_weight="constant", gamma=0.3))
    assert torch.allclose(const, torch.where(correct, 0.7, 0.3) * ce, atol=1e-6)


def test_stage1_confident_split():
    logits, clean, labels = random_case()
    p = logits.softmax(1)
    p_true = p.gather(1, labels.clamp(max=2).unsqueeze(1)).squeeze(1)
    hard = (p_true > 0.5) & (labels != 255)
    loss = transegpgd_loss(logits, labels, ctx_for(labels, 0, 4, clean), tsp(stage1_split="confident"))
    assert torch.allclose(loss, torch.where(hard, 1.0, 0.0) * ce_by_hand(logits, labels), atol=1e-6)


def kl_by_hand(q_logits, p_logits):
    q, p = q_logits.softmax(1), p_logits.softmax(1)
    return (q * (q.log() - p.log())).sum(1)


def test_pixel_kl_both_directions():
    logits, clean, _ = random_case()
    assert torch.allclose(pixel_kl(clean, logits, "clean_adv"), kl_by_hand(clean, logits), atol=1e-5)
    assert torch.allclose(pixel_kl(clean, logits, "adv_clean"), kl_by_hand(logits, clean), atol=1e-5)
    assert not torch.allclose(pixel_kl(clean, logits, "clean_adv"), pixel_kl(clean, logits, "adv_clean"))
    # A zero-probability class contributes 0, not NaN.
    hard = torch.tensor([[0.0, -math.inf, 1.0]]).view(1, 3, 1, 1)
    assert torch.isfinite(pixel_kl(hard, torch.zeros(1, 3, 1, 1), "clean_adv")).all()


def stage2_expected(d, valid, beta, high, objective):
    return torch.where(valid, torch.where(high, 1 - beta, beta) * objective, torch.zeros_like(objective))


def mean_over_valid(d, valid):
    return torch.stack([d[i][valid[i]].mean() for i in range(d.shape[0])])


@pytest.mark.parametrize("direction", ["clean_adv", "adv_clean"])
@pytest.mark.parametrize("side", ["high_kl", "low_kl"])
def test_stage2_mean_split_both_sides(direction, side):
    logits, clean, labels = random_case(seed=3)
    valid = labels != 255
    d = kl_by_hand(clean, logits) if direction == "clean_adv" else kl_by_hand(logits, clean)
    above = (d > mean_over_valid(d, valid)[:, None, None]) & valid
    high = above if side == "high_kl" else valid & ~above
    # step 3 of 4 with T1 = 2: s = 1, beta = 1 / 4.
    loss = transegpgd_loss(logits, labels, ctx_for(labels, 3, 4, clean), tsp(kl_direction=direction, transferable_side=side))
    assert torch.allclose(loss, stage2_expected(d, valid, 0.25, high, ce_by_hand(logits, labels)), atol=1e-6)
    first = transegpgd_loss(logits, labels, ctx_for(labels, 2, 4, clean), tsp(kl_direction=direction, transferable_side=side))
    assert torch.allclose(first, stage2_expected(d, valid, 0.0, high, ce_by_hand(logits, labels)), atol=1e-6)


def test_stage2_median_and_topk_splits():
    d = torch.tensor([[[5.0, 1.0, 3.0, 3.0, 9.0, 7.0]]])
    valid = torch.tensor([[[True, True, True, True, False, True]]])  # valid values 5, 1, 3, 3, 7
    assert upper_set(d, valid, "median", 0.5).tolist() == [[[True, False, False, False, False, True]]]
    assert upper_set(d, valid, "mean", 0.5).tolist() == [[[True, False, False, False, False, True]]]  # mean 3.8
    # ceil(0.5 * 5) = 3 largest: 7, 5, then the first of the tied 3s.
    assert upper_set(d, valid, "topk", 0.5).tolist() == [[[True, False, True, False, False, True]]]
    assert upper_set(d, valid, "topk", 0.2).tolist() == [[[False, False, False, False, False, True]]]
    assert upper_set(d, valid, "topk", 1.0).tolist() == valid.tolist()
    # ceil(0.6 * 5) = 3 exactly, not 4 (no floating-point overshoot).
    assert upper_set(d, valid, "topk", 0.6).sum() == 3


def test_stage2_objectives():
    logits, clean, labels = random_case(seed=5)
    valid = labels != 255
    d = kl_by_hand(clean, logits)
    high = (d > mean_over_valid(d, valid)[:, None, None]) & valid
    ce = ce_by_hand(logits, labels)
    for objective, value in (("kl", d), ("ce_kl", ce + d)):
        loss = transegpgd_loss(logits, labels, ctx_for(labels, 3, 4, clean), tsp(stage2_loss=objective))
        assert torch.allclose(loss, stage2_expected(d, valid, 0.25, high, value), atol=1e-5)
    # The KL objective carries gradient; the CE objective's KL only decides membership.
    x = logits.clone().requires_grad_(True)
    transegpgd_loss(x, labels, ctx_for(labels, 3, 4, clean), tsp(stage2_loss="kl")).sum().backward()
    assert x.grad.abs().sum() > 0


def test_label_reference_splits_on_ce():
    logits, _, labels = random_case(seed=6)
    valid, ce = labels != 255, ce_by_hand(logits, labels)
    high = (ce > mean_over_valid(ce, valid)[:, None, None]) & valid
    loss = transegpgd_loss(logits, labels, ctx_for(labels, 3, 4), tsp(kl_reference="label"))
    assert torch.allclose(loss, stage2_expected(ce, valid, 0.25, high, ce), atol=1e-6)


def test_stage2_constant_beta_and_total_horizon():
    logits, clean, labels = random_case(seed=7)
    valid, ce, d = labels != 255, ce_by_hand(logits, labels), kl_by_hand(clean, logits)
    high = (d > mean_over_valid(d, valid)[:, None, None]) & valid
    const = transegpgd_loss(logits, labels, ctx_for(labels, 2, 4, clean), tsp(stage2_weight="constant", beta=0.2))
    assert torch.allclose(const, stage2_expected(d, valid, 0.2, high, ce), atol=1e-6)
    total = transegpgd_loss(logits, labels, ctx_for(labels, 3, 4, clean), tsp(weight_horizon="total"))  # 3 / 8
    assert torch.allclose(total, stage2_expected(d, valid, 3 / 8, high, ce), atol=1e-6)


def test_all_fooled_switch_is_per_image():
    logits, clean, labels = random_case(seed=8)
    labels[0] = torch.where(labels[0] == 255, 255, (logits[0].argmax(0) + 1) % 3)  # image 0: all fooled
    labels[1, 1, 1] = logits[1, :, 1, 1].argmax()  # image 1: at least one correct pixel
    valid, ce, d = labels != 255, ce_by_hand(logits, labels), kl_by_hand(clean, logits)
    settings = TranSegPGDSettings(steps=4, stage_switch="all_fooled", weight_horizon="total")
    loss = transegpgd_loss(logits, labels, ctx_for(labels, 1, 4, clean), settings)  # both ramps 1 / 8
    high = (d > mean_over_valid(d, valid)[:, None, None]) & valid
    assert torch.allclose(loss[0], stage2_expected(d, valid, 1 / 8, high, ce)[0], atol=1e-6)
    correct = correct_by_hand(logits, labels)
    assert torch.allclose(loss[1], (torch.where(correct, 7 / 8, 1 / 8) * ce)[1], atol=1e-6)
