"""attacks.md section 6, items 1-7: invariants of every registered attack and listed combination."""

from __future__ import annotations

import pytest
import torch

from .conftest import (
    ALL_NAMES,
    LABEL_FREE,
    MODEL_KINDS,
    SPATIAL,
    PixelLinear,
    build_small,
    gens,
    has_modifier,
    make_batch,
    make_source,
)

EPS = 8 / 255


@pytest.mark.parametrize("kind", MODEL_KINDS)
@pytest.mark.parametrize("name", ALL_NAMES)
def test_budget_box_shape_and_inputs_untouched(name, kind):
    model, extra = make_source(kind)
    images, labels = make_batch(n=3)
    images_before, labels_before = images.clone(), labels.clone()
    adv = build_small(name, **extra)(model, images, labels, generator=torch.Generator().manual_seed(0))
    assert (adv - images).abs().max() <= EPS + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1
    assert adv.shape == images.shape and adv.dtype == images.dtype and adv.device == images.device
    assert not adv.requires_grad and adv.grad_fn is None
    assert adv.data_ptr() != images.data_ptr()
    assert torch.equal(images, images_before) and torch.equal(labels, labels_before)
    assert (adv != images).any(), "the attack did not move the images"


@pytest.mark.parametrize("kind", MODEL_KINDS)
@pytest.mark.parametrize("name", ALL_NAMES)
def test_determinism_and_global_rng_untouched(name, kind):
    model, extra = make_source(kind)
    images, labels = make_batch()
    attack = build_small(name, **extra)
    state = torch.get_rng_state()
    a = attack(model, images, labels, generator=torch.Generator().manual_seed(5))
    b = attack(model, images, labels, generator=torch.Generator().manual_seed(5))
    attack(model, images, labels)  # generator=None must not touch the global RNG either
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, b)


@pytest.mark.parametrize("kind", MODEL_KINDS)
@pytest.mark.parametrize("name", ALL_NAMES)
def test_batch_independence(name, kind):
    model, extra = make_source(kind)
    images, labels = make_batch(n=3)
    labels[1] = 255  # one image without valid pixels must not disturb the others
    attack = build_small(name, **extra)
    together = attack(model, images, labels, generator=gens(3, seed=10))
    for i in range(3):
        alone = attack(model, images[i : i + 1], labels[i : i + 1], generator=gens(1, seed=10 + i))
        assert (together[i : i + 1] - alone).abs().max() <= 1e-6, f"image {i}"


@pytest.mark.parametrize("name", [n for n in ALL_NAMES if n not in LABEL_FREE])
def test_all_ignored_image_is_not_moved(name):
    model, _ = make_source("single")
    images, labels = make_batch(n=2)
    labels[0] = 255
    attack = build_small(name)
    adv = attack(model, images, labels, generator=gens(2))
    assert torch.isfinite(adv).all()
    # One step moves nothing either, so the full run must equal the one-step run, i.e. x^0 (the
    # random start when the attack has one).
    if name != "fgsm":
        one_step = build_small(name, steps=1)(model, images, labels, generator=gens(2))
        assert torch.equal(adv[0], one_step[0])
    no_start = build_small(name, random_start=False)(model, images, labels, generator=gens(2))
    assert torch.equal(no_start[0], images[0])
    assert not torch.equal(no_start[1], images[1])


@pytest.mark.parametrize("name", LABEL_FREE)
def test_label_free_attacks_move_images_without_labels(name):
    model, _ = make_source("single")
    images, labels = make_batch(n=2)
    adv = build_small(name, random_start=False)(model, images, torch.full_like(labels, 255), generator=gens(2))
    assert (adv != images).any() and (adv - images).abs().max() <= EPS + 1e-6


@pytest.mark.parametrize("name", [n for n in ALL_NAMES if not has_modifier(n, SPATIAL) and n not in LABEL_FREE])
def test_ignored_pixels_untouched_for_per_pixel_model(name):
    gen = torch.Generator().manual_seed(3)
    model = PixelLinear(torch.randn(3, 3, generator=gen)).eval()
    images, labels = make_batch(n=2, k=3)
    adv = build_small(name, random_start=False)(model, images, labels, generator=gens(2))
    ignored = (labels == 255).unsqueeze(1).expand_as(images)
    assert torch.equal(adv[ignored], images[ignored])
    assert (adv[~ignored] != images[~ignored]).any()


@pytest.mark.parametrize("kind", MODEL_KINDS)
@pytest.mark.parametrize("name", ALL_NAMES)
def test_model_untouched(name, kind):
    model, extra = make_source(kind)
    members = model if isinstance(model, list) else [model]
    members[0].act.train()  # a mixed-mode model: flags must survive as they are
    for m in members:
        m.conv2.bias.requires_grad_(False)
    before = [(mod.training, [p.requires_grad for p in mod.parameters(recurse=False)])
              for m in members for mod in m.modules()]
    images, labels = make_batch()
    build_small(name, **extra)(model, images, labels, generator=torch.Generator().manual_seed(0))
    after = [(mod.training, [p.requires_grad for p in mod.parameters(recurse=False)])
             for m in members for mod in m.modules()]
    assert before == after
    assert all(p.grad is None for m in members for p in m.parameters())


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
