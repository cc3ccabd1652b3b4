"""TASS (He et al., arXiv:2307.16572) against a re-statement of its authors' ``es_NI_DI_TI``.

``es_ni_di_ti`` below re-states the function of github.com/anucvers/TASS, ``attacks.py``, as read
there, with two changes that do not change what it computes on these inputs:

- its DI draws (``np.random.randint`` / ``rand``, one draw per call for the whole batch) come from a
  script that the test also feeds to our ``tdi`` part, for every image;
- its box clamp ``[-mean, 255 - mean]`` (mean-subtracted 0-255 input, eps = 8) is [0, 1] here, the
  model's input range in this benchmark, with eps = 8/255.

The images lie in [0.1, 0.9], so neither side's box clamp binds (the authors clamp only the returned
image, our core every iterate; docs/explanation/attack-core.md, "TASS").
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from benchmark.attacks import BlurSettings, TDISettings, build_attack
from benchmark.attacks.modifiers.blur import InputBlur
from benchmark.attacks.modifiers.tdi import TASSDiverseInputs
from benchmark.attacks.rng import PerImageRNG
from benchmark.errors import ConfigError

from .conftest import TinySegNet, gens

EPS = 8 / 255


def gkern(kernlen: int = 5, nsig: float = 3) -> np.ndarray:
    """Theirs, with scipy's ``st.norm.pdf`` written out."""
    x = np.linspace(-nsig, nsig, kernlen)
    kern1d = np.exp(-x * x / 2) / np.sqrt(2 * np.pi)
    kernel_raw = np.outer(kern1d, kern1d)
    return kernel_raw / kernel_raw.sum()


def es_ni_di_ti(image: torch.Tensor, new_labels: torch.Tensor, eps: float, model, di_script,
                blur_first: bool = False) -> torch.Tensor:
    """The authors' ``es_NI_DI_TI``; ``di_script[i]`` = (rnd_h, rnd_w, pad_top, pad_left, c) of step i.

    ``blur_first`` swaps their ``TI(DI(x))`` into ``DI(TI(x))`` (not theirs: to show the test sees it).
    """
    criterion = nn.CrossEntropyLoss(ignore_index=255, reduction="mean")
    total_iterations = 10
    ieps = eps / total_iterations
    grad_last = 0
    image = image.detach()
    img = image.clone()

    def di(x_in, step):
        rnd_h, rnd_w, pad_top, pad_left, c = di_script[step]
        pad_bottom = x_in.shape[2] - rnd_h - pad_top
        pad_right = x_in.shape[3] - rnd_w - pad_left
        if c <= 0.7:
            return F.pad(F.interpolate(x_in, size=(rnd_h, rnd_w)), (pad_left, pad_right, pad_top, pad_bottom),
                         mode="constant", value=0)
        return x_in

    def ti(grad_in, kernel_size=5):  # their name: a Gaussian blur, here applied to the model input
        kernel = gkern(kernel_size, 3).astype(np.float32)
        gaussian_kernel = torch.from_numpy(np.expand_dims(np.stack([kernel, kernel, kernel]), 1))
        return F.conv2d(grad_in, gaussian_kernel, bias=None, stride=1,
                        padding=(int((kernel_size - 1) / 2), int((kernel_size - 1) / 2)), groups=3)

    for i in range(total_iterations):
        new_images_d = ieps * grad_last + img
        new_images_d.requires_grad_()
        logits = model(di(ti(new_images_d), i) if blur_first else ti(di(new_images_d, i)))
        loss = criterion(logits, new_labels)
        loss.backward()
        in_grad = new_images_d.grad.clone()
        in_grad = in_grad / torch.mean(torch.abs(in_grad), (1, 2, 3), keepdim=True) + 1 * grad_last
        grad_last = in_grad
        new_images_d.grad.zero_()
        img = img.detach().data + ieps * torch.sign(in_grad)
        image = img.clamp(0, 1)  # theirs: the valid range of their model's input, on the returned copy
    return image


def authors_draws(h: int, w: int, seed: int, steps: int = 10) -> list[tuple[int, int, int, int, float]]:
    """DI draws made as their ``DI`` makes them (numpy, [H - 30, H), offsets in [0, rem))."""
    rs = np.random.RandomState(seed)
    script = []
    for _ in range(steps):
        rnd_h, rnd_w = rs.randint(h - 30, h), rs.randint(w - 30, w)
        pad_top, pad_left = rs.randint(0, h - rnd_h), rs.randint(0, w - rnd_w)
        script.append((int(rnd_h), int(rnd_w), int(pad_top), int(pad_left), float(rs.rand())))
    return script


def scripted(monkeypatch, script, n):
    """Make our ``tdi`` part return step t's scripted draw for every image of the batch."""
    calls = []

    def draw(self, rng, h, w):
        rnd_h, rnd_w, top, left, c = script[len(calls)]
        calls.append(c)
        rng.uniform_host((5,))  # keep the generators' streams as the real draw would
        return [(c <= 0.7, rnd_h, rnd_w, top, left)] * n

    monkeypatch.setattr(TASSDiverseInputs, "draw", draw)
    return calls


def tass_case(n: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    h, w = 40, 53
    images = 0.1 + 0.8 * torch.rand(n, 3, h, w, generator=gen)
    labels = torch.randint(0, 4, (n, h, w), generator=gen)
    labels[:, :4, :6] = 255
    return TinySegNet(seed=seed).eval(), images, labels


def test_tass_defaults_are_the_authors():
    flat = build_attack("tass").to_dict()
    assert flat["eps"] == EPS and flat["steps"] == 10 and flat["alpha"] == pytest.approx(EPS / 10)
    assert flat["random_start"] is False and flat["decay"] == 1.0 and flat["label_source"] == "ground_truth"
    assert (flat["tdi_shrink"], flat["tdi_prob"], flat["blur_kernel"], flat["blur_nsig"]) == (30, 0.7, 5, 3.0)
    assert flat["step_schedule"] == "constant" and flat["return_iterate"] == "last"


@pytest.mark.parametrize("n, seed", [(1, 0), (1, 1), (2, 2), (3, 3)])
def test_tass_matches_the_authors_function(monkeypatch, n, seed):
    model, images, labels = tass_case(n, seed)
    script = authors_draws(*images.shape[-2:], seed=seed)
    assert any(c <= 0.7 for *_, c in script) and any(c > 0.7 for *_, c in script)
    theirs = es_ni_di_ti(images.clone(), labels, EPS, model, script)
    assert all(p.grad is not None for p in model.parameters())  # their loss.backward() fills them
    model.zero_grad(set_to_none=True)
    calls = scripted(monkeypatch, script, n)
    ours = build_attack("tass")(model, images, labels, generator=gens(n))
    assert len(calls) == 10
    assert (ours - images).abs().max() > EPS / 2  # it moved
    assert (ours - theirs).abs().max() <= 1e-6


def test_the_comparison_sees_the_order_of_blur_and_di_and_each_part(monkeypatch):
    """The 1e-6 agreement is not loose: blurring before DI, or leaving out DI or the blur, differs."""
    model, images, labels = tass_case(1, 0)
    script = authors_draws(*images.shape[-2:], seed=0)
    blur_first = es_ni_di_ti(images.clone(), labels, EPS, model, script, blur_first=True)
    scripted(monkeypatch, script, 1)
    ours = build_attack("tass")(model, images, labels, generator=gens(1))
    assert (ours - blur_first).abs().max() > 1e-3
    for name in ("nifgsm", "bim+ni+blur"):  # no DI; no DI and the blur
        assert (build_attack(name)(model, images, labels) - ours).abs().max() > 1e-3, name
    scripted(monkeypatch, script, 1)
    no_blur = build_attack("bim+ni+tdi", alpha=None, steps=10, random_start=False)
    assert (no_blur(model, images, labels, generator=gens(1)) - ours).abs().max() > 1e-3


def test_tdi_draws_stay_in_the_authors_ranges():
    part = TASSDiverseInputs(TDISettings())
    h, w = 45, 70
    draws = [d for seed in range(200) for d in part.draw(PerImageRNG(torch.Generator().manual_seed(seed), 2,
                                                                     torch.device("cpu")), h, w)]
    for apply, new_h, new_w, top, left in draws:
        assert h - 30 <= new_h <= h - 1 and w - 30 <= new_w <= w - 1
        assert 0 <= top <= h - new_h - 1 and 0 <= left <= w - new_w - 1
    sizes = {d[1] for d in draws}
    assert min(sizes) == h - 30 and max(sizes) == h - 1
    assert 0.6 < sum(d[0] for d in draws) / len(draws) < 0.8


def test_tdi_canvas_keeps_the_size_and_is_compared_unmapped():
    part = TASSDiverseInputs(TDISettings(tdi_prob=1.0))
    x = torch.rand(2, 3, 12, 9, generator=torch.Generator().manual_seed(0))  # smaller than the 30-px shrink
    (view,) = part(x, PerImageRNG(gens(2), 2, x.device))
    (canvas,) = view.inputs
    assert canvas.shape == x.shape and view.coverage is None
    assert view.back([canvas]) is canvas  # logits meet the labels as they are (the authors' loss)
    for image in canvas:  # zero padding on the bottom and right at least (offsets exclude the far end)
        assert (image[:, -1] == 0).all() and (image[:, :, -1] == 0).all()


def test_blur_is_a_filter_after_any_geometry_transform():
    assert build_attack("pgd+blur+ds").name == "pgd+ds+blur"
    with pytest.raises(ConfigError, match="takes no geometry transform or filter"):
        build_attack("fspgd+blur")
    with pytest.raises(ConfigError, match="blur_kernel=4: must be an odd integer"):
        build_attack("pgd+blur", blur_kernel=4)
    x = torch.full((1, 4, 9, 8), 0.5)  # any channel count; interior of a constant image unchanged
    out = InputBlur(BlurSettings())(x)
    assert out.shape == x.shape and torch.allclose(out[..., 2:-2, 2:-2], x[..., 2:-2, 2:-2])
    assert (out[..., 0, :] < 0.5).all()  # zero padding darkens the border
