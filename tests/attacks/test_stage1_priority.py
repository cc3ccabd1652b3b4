"""TranSegPGD's ``stage1_priority`` (the ambiguity register A17, docs/explanation/transegpgd.md): which stage-1
branch is weighted up."""

from __future__ import annotations

import pytest
import torch

from benchmark.attacks import TranSegPGDSettings, build_attack
from benchmark.attacks.bases.transegpgd import transegpgd_loss
from benchmark.attacks.losses.ce import pixel_ce
from benchmark.attacks.parts import LossContext
from benchmark.errors import ConfigError

from .conftest import PixelLinear

EPS = 8 / 255
WEIGHT = torch.tensor([[1.0, -0.5, 0.25], [-0.75, 0.5, 1.0]])  # 2 classes x 3 channels


def oracle_case():
    """A per-pixel linear model and one 4 x 6 image whose left half is predicted as its label and
    whose right half is not (the labels say the other class there); row 0 is ignored."""
    images = torch.full((1, 3, 4, 6), 0.5)
    images[0, :, :, :3] = torch.tensor([0.9, 0.1, 0.1])[:, None, None]  # class 0 wins
    images[0, :, :, 3:] = torch.tensor([0.1, 0.9, 0.9])[:, None, None]  # class 1 wins
    labels = torch.zeros(1, 4, 6, dtype=torch.long)  # label 0 everywhere: left correct, right fooled
    labels[0, 0] = 255
    model = PixelLinear(WEIGHT).eval()
    with torch.no_grad():
        pred = model(images).argmax(1)
    correct = (pred == labels) & (labels != 255)
    fooled = (pred != labels) & (labels != 255)
    assert correct[0, 1:, :3].all() and fooled[0, 1:, 3:].all()
    return model, images, labels, correct, fooled


@pytest.mark.parametrize("split", ["correct", "confident"])
@pytest.mark.parametrize("priority", ["correct", "fooled"])
def test_the_priority_branch_gets_one_minus_gamma(priority, split):
    model, images, labels, correct, fooled = oracle_case()
    valid = labels != 255
    s = TranSegPGDSettings(steps=8, stage1_steps=4, stage1_priority=priority, stage1_split=split)
    logits = model(images)
    ctx = LossContext(step=1, steps=8, valid=valid)  # stage 1, gamma_1 = 1 / (2 * 4)
    weight = transegpgd_loss(logits, labels, ctx, s) / pixel_ce(logits, labels, valid)
    high, low = (correct, fooled) if priority == "correct" else (fooled, correct)
    assert torch.allclose(weight[high], torch.tensor(1 - 1 / 8)) and torch.allclose(weight[low], torch.tensor(1 / 8))
    assert (transegpgd_loss(logits, labels, ctx, s)[~valid] == 0).all()


@pytest.mark.parametrize("priority", ["correct", "fooled"])
def test_one_stage1_step_moves_only_the_priority_branch(priority):
    """gamma_0 = 0: the first step's loss is the priority branch's CE alone; with a per-pixel model only
    those pixels receive a gradient, so only they move (by alpha, towards the other class)."""
    model, images, labels, correct, fooled = oracle_case()
    attack = build_attack("transegpgd", steps=1, stage1_steps=1, random_start=False, step_schedule="constant",
                          alpha=EPS, stage1_priority=priority)
    moved = (attack(model, images, labels) - images).abs().amax(dim=1)  # (1, H, W)
    high, low = (correct, fooled) if priority == "correct" else (fooled, correct)
    assert torch.allclose(moved[high], torch.tensor(EPS)) and (moved[low] == 0).all()
    assert (moved[labels == 255] == 0).all()


def test_default_is_left_out_of_the_settings_and_their_hash():
    default = build_attack("transegpgd")
    explicit = build_attack("transegpgd", stage1_priority="correct")
    fooled = build_attack("transegpgd", stage1_priority="fooled")
    assert "stage1_priority" not in default.to_dict() and default.to_dict() == explicit.to_dict()
    assert default.settings_hash == explicit.settings_hash
    assert fooled.to_dict()["stage1_priority"] == "fooled" and fooled.settings_hash != default.settings_hash
    assert default.settings.base.stage1_priority == "correct"
    # the hash of the defaults before the option existed (the "TranSegPGD option ablation" runs,
    # docs/explanation/findings.md)
    assert default.settings_hash == "a07bd51fe887"


def test_bad_priority_is_refused_with_field_and_value():
    with pytest.raises(ConfigError, match="stage1_priority='hard': must be one of 'correct', 'fooled'"):
        build_attack("transegpgd", stage1_priority="hard")
