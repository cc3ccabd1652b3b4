"""attacks.md section 6, items 1-7: invariants of every registered attack and listed combination."""

from __future__ import annotations

import dataclasses
import types

import pytest
import torch

from benchmark.attacks import ATTACKS, registry
from benchmark.attacks.conformance import CHECKS, check_attack
from benchmark.attacks.losses.ce import pixel_ce
from benchmark.attacks.rules.sign import SignStep

from .conftest import ALL_NAMES, build_small, gens, make_batch, make_source

EPS = 8 / 255


@pytest.mark.parametrize("name", ALL_NAMES)
def test_every_registered_attack_and_listed_combination_conforms(name):
    """The one definition of a valid attack (``benchmark.attacks.conformance``, also behind
    ``benchmark check-attack``): eps-ball, model and RNG untouched, determinism, batch independence,
    ignored pixels, the planner's pass count."""
    checks = check_attack(name)
    assert [c.name for c in checks] == list(CHECKS)
    failed = [f"{c.name}: {c.detail}" for c in checks if not c.holds]
    assert not failed, failed


def test_the_check_fails_the_right_row_on_broken_attacks():
    """Each invariant can fail: broken parts built from the real ones fail exactly their row."""
    cases = {
        "eps-ball": ("rule", lambda s: _Overshoot()),
        "global RNG": ("loss", lambda s: _global_noise_loss),
        "ignored pixels": ("image_loss", lambda s: _ignored_image_loss),
        "batch": ("loss", lambda s: _batch_mean_loss),
    }
    for row, (where, make) in cases.items():
        fields = {"rule": {"make_rule": make}, "loss": {"make_loss": make},
                  "image_loss": {"make_loss": lambda s: None, "make_image_loss": make}}[where]
        entry = dataclasses.replace(ATTACKS["pgd"], name="broken", **fields)
        module = types.ModuleType("broken_attack")
        module.METHODS = (entry,)
        registry.register_module(module, {"import": "broken_attack.py", "sha256": {}})
        try:
            checks = {c.name: c for c in check_attack("broken")}
        finally:
            registry.unregister(["broken"])
        assert checks[row].holds is False, (row, checks)
        assert checks["builds"].holds and checks["passes"].holds, row


@pytest.mark.parametrize("name", ["pgd", "transegpgd", "transegpgd+mi+di+ti", "cospgd"])
def test_runs_under_bf16_autocast(name):
    model, _ = make_source("single")
    images, labels = make_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        adv = build_small(name)(model, images, labels, generator=torch.Generator().manual_seed(0))
    assert adv.dtype == torch.float32 and torch.isfinite(adv).all()
    assert (adv - images).abs().max() <= EPS + 1e-6 and (adv != images).any()


def test_generator_sequence_must_match_batch():
    model, _ = make_source("single")
    images, labels = make_batch(n=2)
    with pytest.raises(ValueError, match="generator"):
        build_small("pgd")(model, images, labels, generator=gens(3))


def test_bad_input_shapes_are_rejected():
    model, _ = make_source("single")
    images, labels = make_batch(n=2)
    with pytest.raises(ValueError, match="labels"):
        build_small("pgd")(model, images, labels[:, :, :-1])
    with pytest.raises(ValueError, match="labels"):
        build_small("pgd")(model, images, labels.int())


def test_best_iterate_is_no_worse_than_last_on_source():
    model, _ = make_source("single")
    images, labels = make_batch(n=3)

    def accuracy(x):
        with torch.no_grad():
            valid = labels != 255
            correct = (model(x).argmax(1) == labels) & valid
            return correct.sum((1, 2)) / valid.sum((1, 2))

    for name in ("pgd", "transegpgd+ni", "pgd+di"):
        last = build_small(name, steps=6)(model, images, labels, generator=gens(3))
        best = build_small(name, steps=6, return_iterate="best")(model, images, labels, generator=gens(3))
        assert (accuracy(best) <= accuracy(last) + 1e-6).all()
        assert (best - images).abs().max() <= EPS + 1e-6


class _Overshoot(SignStep):
    """A step rule that forgets the projection: it leaves the eps-ball."""

    def step(self, x, direction, values, alpha_t, lower, upper, state, t):
        return (x + alpha_t * direction.sign()).detach(), state


def _global_noise_loss(logits, labels, ctx):
    """Draws from the global RNG: the global RNG row fails."""
    return pixel_ce(logits, labels, ctx.valid) * (1 + 0 * torch.rand(()))


def _ignored_image_loss(logits, labels, ctx):
    """A per-image CE that counts ignored pixels as class 0: they carry loss."""
    everywhere = torch.ones_like(ctx.valid)
    return pixel_ce(logits, torch.where(ctx.valid, labels, 0), everywhere).sum(dim=(1, 2))


def _batch_mean_loss(logits, labels, ctx):
    """Weights an image's pixels by its distance to the batch mean: alone it has none."""
    z = logits.detach().float()
    weight = (z.mean() - z.mean(dim=(1, 2, 3))).abs().view(-1, 1, 1)
    return pixel_ce(logits, labels, ctx.valid) * weight
