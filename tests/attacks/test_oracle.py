"""attacks.md section 6, item 8 (analytic oracle) and item 11 (loss increases on the oracle model).

A two-class per-pixel linear model: the CE gradient at every pixel of an image with label y has the
constant sign s_c = sign(w_other,c - w_y,c) per channel, whatever x is, so the best L-inf perturbation
is the corner clamp(x + eps * s, 0, 1).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from benchmark.attacks import build_attack

from .conftest import ALL_NAMES, PixelLinear, gens, has_modifier

EPS = 8 / 255
WEIGHT = torch.tensor([[0.8, -0.5, 0.3, 0.6], [-0.4, 0.7, -0.9, 0.2]])  # 2 classes x 4 channels


def oracle_case():
    gen = torch.Generator().manual_seed(7)
    images = torch.rand(2, 4, 11, 13, generator=gen)
    labels = torch.zeros(2, 11, 13, dtype=torch.long)
    labels[1] = 1  # each image has a single label
    signs = torch.stack([torch.sign(WEIGHT[1] - WEIGHT[0]), torch.sign(WEIGHT[0] - WEIGHT[1])])  # (N, C)
    corner = (images + EPS * signs[:, :, None, None]).clamp(0, 1)
    return PixelLinear(WEIGHT).eval(), images, labels, signs[:, :, None, None], corner


def oracle_settings(name):
    return {} if name == "fgsm" else {"alpha": EPS, "steps": 8}


#: Attacks whose objective does not lead to the CE corner, each with its own oracle test in
#: test_transfer_parts.py: DAG and SEA's masked losses stop pushing a pixel once it is fooled, and
#: FSPGD ignores the labels (it lowers feature similarity).
NOT_CE_CORNER = {"dag", "sea", "fspgd"}


#: Geometry transforms whose nearest resize leaves some pixels without gradient at some steps.
RESAMPLED = ("di", "tdi")


@pytest.mark.parametrize("name", [n for n in ALL_NAMES if not has_modifier(n, RESAMPLED) and n not in NOT_CE_CORNER])
def test_reaches_the_corner(name):
    model, images, labels, _, corner = oracle_case()
    adv = build_attack(name, **oracle_settings(name))(model, images, labels, generator=gens(2))
    assert torch.equal(adv, corner)


@pytest.mark.parametrize("name", [n for n in ALL_NAMES if has_modifier(n, RESAMPLED)])
def test_di_never_moves_against_the_gradient_sign(name):
    model, images, labels, signs, _ = oracle_case()
    attack = build_attack(name, **oracle_settings(name))
    adv = attack(model, images, labels, generator=gens(2))
    # x^0: the same call with every pixel ignored moves nothing from the (same) random start.
    x0 = attack(model, images, torch.full_like(labels, 255), generator=gens(2))
    moved = torch.sign(adv - x0)
    assert not (moved == -signs.expand_as(moved)).any()
    assert (moved == signs.expand_as(moved)).float().mean() > 0.5


def test_transegpgd_kl_objective_is_the_documented_exception_but_stays_in_budget():
    model, images, labels, _, _ = oracle_case()
    adv = build_attack("transegpgd", stage2_loss="kl", alpha=EPS, steps=8)(model, images, labels, generator=gens(2))
    assert (adv - images).abs().max() <= EPS + 1e-6


@pytest.mark.parametrize("name", ["pgd", "segpgd", "transegpgd", "mifgsm"])
def test_loss_increases_on_the_oracle(name):
    model, images, labels, _, _ = oracle_case()
    adv = build_attack(name, steps=8)(model, images, labels, generator=gens(2))
    with torch.no_grad():
        assert F.cross_entropy(model(adv), labels) > F.cross_entropy(model(images), labels)
