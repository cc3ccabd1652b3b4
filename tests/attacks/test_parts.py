"""Schedules, MI normalisation, TI kernel, DI inverse, per-image randomness (attacks.md 6, item 10)."""

from __future__ import annotations

import math

import pytest
import torch

from benchmark.attacks import DISettings, MomentumSettings, TISettings
from benchmark.attacks.modifiers.di import DiverseInputs
from benchmark.attacks.modifiers.momentum import Momentum, l1_normalise
from benchmark.attacks.modifiers.ti import TranslationInvariant, gaussian_kernel
from benchmark.attacks.rng import PerImageRNG
from benchmark.attacks.schedules import SCHEDULES

from .conftest import gens

ALPHA = 2 / 255


def schedule_values(name, steps, rho=0.5, n=2, seed=0):
    rng = PerImageRNG(gens(n, seed), n, torch.device("cpu"), torch.float64)
    return torch.stack([SCHEDULES[name](ALPHA, t, steps, rng, rho) for t in range(steps)]).view(steps, n)


@pytest.mark.parametrize("rho", [0.25, 0.5, 1.0])
def test_deterministic_schedules_values_and_mean(rho):
    steps = 9
    assert torch.allclose(schedule_values("constant", steps, rho), torch.full((steps, 2), ALPHA, dtype=torch.float64))
    for name in ("linear", "cosine"):
        values = schedule_values(name, steps, rho)
        assert math.isclose(values[0, 0].item(), (2 - rho) * ALPHA, rel_tol=1e-12)
        assert math.isclose(values[-1, 0].item(), rho * ALPHA, rel_tol=1e-9, abs_tol=1e-15)
        assert math.isclose(values[:, 0].mean().item(), ALPHA, rel_tol=1e-12)
        assert (values[1:] <= values[:-1] + 1e-15).all()
    mid = schedule_values("cosine", 3, rho)[1, 0].item()  # u = 1/2: cos = 0
    assert math.isclose(mid, ALPHA, rel_tol=1e-12)
    assert math.isclose(schedule_values("linear", 3, rho)[1, 0].item(), ALPHA, rel_tol=1e-12)


def test_single_step_schedules_are_alpha():
    for name in ("constant", "linear", "cosine", "uniform"):
        assert torch.allclose(schedule_values(name, 1), torch.full((1, 2), ALPHA, dtype=torch.float64))


def test_uniform_schedule_range_mean_and_per_image_draws():
    values = schedule_values("uniform", 4000, rho=0.5, n=2)
    assert (values >= 0.5 * ALPHA).all() and (values <= 1.5 * ALPHA).all()
    assert abs(values.mean().item() / ALPHA - 1) < 0.02
    assert not torch.equal(values[:, 0], values[:, 1])
    alone = schedule_values("uniform", 50, n=1, seed=1)  # image 1's generator alone
    assert torch.equal(schedule_values("uniform", 50, n=2)[:, 1], alone[:, 0])


def test_per_image_rng_single_generator_draws_in_batch_order():
    rng = PerImageRNG(torch.Generator().manual_seed(3), 3, torch.device("cpu"))
    draws = rng.uniform((2,))
    ref = torch.Generator().manual_seed(3)
    expected = torch.stack([torch.rand(2, generator=ref) for _ in range(3)])
    assert torch.equal(draws, expected)


def test_mi_normalisation_is_per_image_mean_abs():
    gen = torch.Generator().manual_seed(0)
    grad = torch.randn(3, 2, 5, 7, generator=gen)
    grad[0] *= 1000.0
    grad[2] = 0.0
    out = l1_normalise(grad)
    assert torch.allclose(out[0].abs().mean(), torch.tensor(1.0)) and torch.allclose(out[1].abs().mean(), torch.tensor(1.0))
    assert torch.allclose(out[1], grad[1] / grad[1].abs().mean())
    assert torch.equal(out[2], torch.zeros_like(out[2]))
    tiny = grad[1:2] * 1e-30  # legitimately tiny gradients are not clamped away
    assert torch.allclose(l1_normalise(tiny), out[1:2], rtol=1e-4)


def test_momentum_accumulates_and_ni_looks_ahead():
    mi, ni = Momentum(MomentumSettings(decay=0.5)), Momentum(MomentumSettings(decay=0.5), nesterov=True)
    g1, g2 = torch.ones(1, 1, 2, 2), torch.full((1, 1, 2, 2), -3.0)
    state = mi.init(g1)
    assert mi.lookahead(state) is None and torch.equal(ni.lookahead(state), torch.zeros_like(g1))
    d, state = mi(g1, state)
    assert torch.equal(d, torch.ones_like(g1))
    d, state = mi(g2, state)
    assert torch.equal(d, torch.full_like(g1, 0.5 - 1.0))
    assert torch.equal(ni.lookahead(state), 0.5 * state)


@pytest.mark.parametrize("channels", [1, 4])
def test_ti_kernel(channels):
    ti = TranslationInvariant(TISettings(kernel_size=5, nsig=3.0))
    state = ti.init(torch.zeros(1, channels, 9, 9))
    kernel = gaussian_kernel(5, 3.0, channels)
    assert kernel.shape == (channels, 1, 5, 5)
    w = kernel[0, 0]
    assert torch.allclose(kernel.sum(dim=(1, 2, 3)), torch.ones(channels))
    assert torch.equal(w, w.flip(0)) and torch.equal(w, w.flip(1)) and torch.allclose(w, w.T)
    # z spacing 2 * 3 / 4 = 1.5: neighbouring weights differ by exp(-1.5^2 / 2).
    assert math.isclose((w[2, 3] / w[2, 2]).item(), math.exp(-0.5 * 1.5**2), rel_tol=1e-5)
    impulse = torch.zeros(1, channels, 9, 9)
    impulse[0, channels - 1, 4, 4] = 1.0
    out, _ = ti(impulse, state)
    assert torch.allclose(out[0, channels - 1, 2:7, 2:7], w)
    assert (out[0, : channels - 1] == 0).all() and out[0, channels - 1].sum().item() == pytest.approx(1.0)
    # Equal to the plain k x k depthwise convolution with zero padding, borders included.
    grad = torch.randn(2, channels, 7, 11, generator=torch.Generator().manual_seed(1))
    reference = torch.nn.functional.conv2d(grad, kernel, padding=2, groups=channels)
    assert torch.allclose(ti(grad, state)[0], reference, atol=1e-6)


def smooth_image(h, w, c=2):
    yy = torch.linspace(0, 1, h).view(h, 1)
    xx = torch.linspace(0, 1, w).view(1, w)
    img = torch.stack([0.5 + 0.4 * torch.sin(2 * math.pi * yy) * torch.cos(math.pi * xx + k) for k in range(c)])
    return img.unsqueeze(0).expand(3, c, h, w).contiguous()


@pytest.mark.parametrize("rate", [1.25, 0.8])
def test_di_back_realigns_logits_with_labels(rate):
    h, w = 40, 56
    x = smooth_image(h, w)
    di = DiverseInputs(DISettings(resize_rate=rate, diversity_prob=1.0))
    for seed in range(4):
        ((inputs, back, _),) = di(x, PerImageRNG(gens(3, 10 * seed), 3, x.device))
        canvas_hw = (max(h, math.floor(rate * h)), max(w, math.floor(rate * w)))
        assert len(inputs) == 1 and inputs[0].shape[-2:] == canvas_hw
        restored = back([inp.clone() for inp in inputs])  # the "model" returns its input as logits
        assert restored.shape == x.shape
        assert (restored - x).abs().mean() < 0.02, (restored - x).abs().mean()
        # Without the crop, content would be displaced: the inverse really is doing the work.
        naive = torch.nn.functional.interpolate(inputs[0], size=(h, w), mode="bilinear", align_corners=False)
        assert (naive - x).abs().mean() > (restored - x).abs().mean()


def test_di_probability_zero_is_identity_and_mixed_batches_keep_order():
    x = smooth_image(20, 30)
    ((inputs, back, _),) = DiverseInputs(DISettings(diversity_prob=0.0))(x, PerImageRNG(gens(3), 3, x.device))
    assert len(inputs) == 1 and inputs[0] is x and back([x]) is x
    x = x + torch.arange(3).view(3, 1, 1, 1)  # images distinguishable by offset
    for seed in range(6):
        ((inputs, back, _),) = DiverseInputs(DISettings(diversity_prob=0.5))(x, PerImageRNG(gens(3, seed), 3, x.device))
        restored = back([inp.clone() for inp in inputs])
        assert torch.allclose(restored.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)), atol=0.05)


def test_di_gradient_reaches_the_input():
    x = smooth_image(20, 30).requires_grad_(True)
    ((inputs, back, _),) = DiverseInputs(DISettings(diversity_prob=1.0))(x, PerImageRNG(gens(3), 3, x.device))
    (g,) = torch.autograd.grad(back(inputs).sum(), x)
    assert (g != 0).float().mean() > 0.9
