"""attacks.md section 6, item 9: equivalences between attacks, and hand-written reference loops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from benchmark.attacks import build_attack

from .conftest import TinySegNet, gens, make_batch

EPS = 8 / 255


def model_and_batch(n=3):
    return TinySegNet(seed=4).eval(), *make_batch(n=n, seed=2)


def reference_objective(model, x, labels):
    """J = sum_n mean over valid pixels of CE, written from attacks.md section 1."""
    valid = labels != 255
    ce = F.cross_entropy(model(x).float(), torch.where(valid, labels, 0), reduction="none")
    ce = torch.where(valid, ce, torch.zeros_like(ce))
    return (ce.sum(dim=(1, 2)) / valid.sum(dim=(1, 2)).clamp(min=1)).sum()


def plain_pgd(model, images, labels, eps, alpha, steps):
    x = images.clone()
    for _ in range(steps):
        x.requires_grad_(True)
        (g,) = torch.autograd.grad(reference_objective(model, x, labels), x)
        x = x.detach() + alpha * g.sign()
        x = torch.min(torch.max(x, images - eps), images + eps).clamp(0, 1)
    return x


def plain_mifgsm(model, images, labels, eps, alpha, steps, decay):
    x, momentum = images.clone(), torch.zeros_like(images)
    for _ in range(steps):
        x.requires_grad_(True)
        (g,) = torch.autograd.grad(reference_objective(model, x, labels), x)
        momentum = decay * momentum + g / g.abs().mean(dim=(1, 2, 3), keepdim=True)
        x = x.detach() + alpha * momentum.sign()
        x = torch.min(torch.max(x, images - eps), images + eps).clamp(0, 1)
    return x


def test_pgd_without_random_start_matches_a_plain_loop():
    model, images, labels = model_and_batch()
    lib = build_attack("pgd", random_start=False, steps=7)(model, images, labels)
    assert torch.equal(lib, plain_pgd(model, images, labels, EPS, 2 / 255, 7))


def test_mifgsm_matches_a_plain_loop():
    model, images, labels = model_and_batch()
    lib = build_attack("mifgsm", steps=10)(model, images, labels)
    assert torch.equal(lib, plain_mifgsm(model, images, labels, EPS, EPS / 10, 10, 1.0))


def test_fgsm_is_the_core_with_one_step_of_size_eps():
    model, images, labels = model_and_batch()
    fgsm = build_attack("fgsm")(model, images, labels)
    assert torch.equal(fgsm, build_attack("bim", steps=1, alpha=EPS)(model, images, labels))
    assert torch.equal(fgsm, plain_pgd(model, images, labels, EPS, EPS, 1))


def test_bim_is_pgd_without_random_start():
    model, images, labels = model_and_batch()
    bim = build_attack("bim")(model, images, labels)
    assert torch.equal(bim, build_attack("pgd", random_start=False)(model, images, labels))


@pytest.mark.parametrize("name", ["mifgsm", "nifgsm"])
def test_zero_decay_is_bim(name):
    model, images, labels = model_and_batch()
    adv = build_attack(name, decay=0.0, steps=10)(model, images, labels)
    assert torch.equal(adv, build_attack("bim", alpha=EPS / 10, steps=10)(model, images, labels))


def test_ni_differs_from_mi():
    model, images, labels = model_and_batch()
    assert not torch.equal(build_attack("nifgsm")(model, images, labels), build_attack("mifgsm")(model, images, labels))


# TranSegPGD identities (attacks.md 3.2), constant schedule and the same random start.

@pytest.mark.parametrize("offset", [0, 1])
def test_transegpgd_with_only_stage1_is_segpgd(offset):
    model, images, labels = model_and_batch()
    common = {"steps": 8, "lambda_offset": offset}
    ours = build_attack("transegpgd", stage1_steps=8, step_schedule="constant", **common)
    ref = build_attack("segpgd", **common)
    assert torch.equal(ours(model, images, labels, gens(3)), ref(model, images, labels, gens(3)))


def test_transegpgd_with_half_constant_stage2_only_is_pgd():
    model, images, labels = model_and_batch()
    ours = build_attack("transegpgd", stage1_steps=0, stage2_weight="constant", beta=0.5,
                        step_schedule="constant", steps=8)
    assert torch.equal(ours(model, images, labels, gens(3)),
                       build_attack("pgd", steps=8)(model, images, labels, gens(3)))


def test_transegpgd_constant_half_gamma_makes_stage1_pgd():
    model, images, labels = model_and_batch()
    ours = build_attack("transegpgd", stage1_steps=8, stage1_weight="constant", gamma=0.5,
                        step_schedule="constant", steps=8)
    assert torch.equal(ours(model, images, labels, gens(3)),
                       build_attack("pgd", steps=8)(model, images, labels, gens(3)))


def test_transegpgd_defaults_differ_from_both_baselines():
    model, images, labels = model_and_batch()
    ours = build_attack("transegpgd", step_schedule="constant", steps=8)(model, images, labels, gens(3))
    assert not torch.equal(ours, build_attack("segpgd", steps=8)(model, images, labels, gens(3)))
    assert not torch.equal(ours, build_attack("pgd", steps=8)(model, images, labels, gens(3)))


def test_segpgd_differs_from_pgd_and_offset_matters():
    model, images, labels = model_and_batch()
    seg0 = build_attack("segpgd", steps=8)(model, images, labels, gens(3))
    seg1 = build_attack("segpgd", steps=8, lambda_offset=1)(model, images, labels, gens(3))
    assert not torch.equal(seg0, seg1)
    assert not torch.equal(seg0, build_attack("pgd", steps=8)(model, images, labels, gens(3)))


# Ensembles and label source ---------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["logits", "loss"])
@pytest.mark.parametrize("name", ["pgd", "transegpgd", "transegpgd+mi+di+ti"])
def test_ensemble_of_one_model_twice_equals_the_model(mode, name):
    model, images, labels = model_and_batch()
    single = build_attack(name, steps=6)(model, images, labels, gens(3))
    double = build_attack(name, steps=6, ensemble=mode)([model, model], images, labels, gens(3))
    assert torch.equal(single, double)


def test_ensemble_modes_differ_for_different_members():
    model, images, labels = model_and_batch()
    members = [model, TinySegNet(seed=9).eval()]
    by_logits = build_attack("transegpgd", steps=6, ensemble="logits")(members, images, labels, gens(3))
    by_loss = build_attack("transegpgd", steps=6, ensemble="loss")(members, images, labels, gens(3))
    assert not torch.equal(by_logits, by_loss)
    assert not torch.equal(by_logits, build_attack("transegpgd", steps=6)(model, images, labels, gens(3)))


def test_clean_pred_labels_are_the_source_argmax_on_valid_pixels():
    model, images, labels = model_and_batch()
    with torch.no_grad():
        pred = torch.where(labels != 255, model(images).argmax(1), labels)
    ours = build_attack("segpgd", steps=5, label_source="clean_pred")(model, images, labels, gens(3))
    assert torch.equal(ours, build_attack("segpgd", steps=5)(model, images, pred, gens(3)))
