"""The transfer transforms against their authors' code (or torchattacks), re-stated here.

torchattacks, TransferAttack and the authors' TensorFlow scripts cannot run beside this CPU torch, so
each ``ref_*`` function re-states one reference function in a few lines of our own: the same maths,
the same order of operations and the same conventions; its comment names the repository, file and
function (snapshots read: Harry24k/adversarial-attacks-pytorch 23620a69, Trustworthy-AI-Group/
TransferAttack 2663e4ab, JHL-HUST/VT 9c876807, JHL-HUST/Admix db15db91, yuyang-long/SSA c955cf07,
Trustworthy-AI-Group/BSR 6ec37d9e, cihangxie/DI-2-FGSM 10ffd9b9, dongyp13/Translation-Invariant-
Attacks c3ae1ba0).

Both sides get identical draws: the test makes them, our attack receives them through a scripted
``PerImageRNG`` (:class:`Script`, which also checks that ours draws exactly as often, in the same
order and shape), the reference through its own calls (the U[0, 1) tensor behind ``uniform_``, the
integer ``torch.randint`` returns, the permutation ``randperm`` returns, ...). Sources: a tiny
segmentation net (the references' ``nn.CrossEntropyLoss`` takes (N, K, H, W) logits as they are) or,
where the reference transform changes the geometry, a classifier whose logits are copied to every
pixel (its per-pixel CE is the classifier's CE). Our objective is a sum over images of per-image
means, the references' a batch mean: a positive constant factor, which neither the sign step nor the
per-image L1 normalisation of MI sees.

Where ours differs on purpose (segmentation geometry, per-image draws) the test pins the difference;
the known mistakes that need a change outside the transform files are strict xfails.
"""

from __future__ import annotations

import math
from collections import deque

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.attacks import (
    AdmixSettings,
    BSRSettings,
    DISettings,
    IterativeSettings,
    SSASettings,
    TISettings,
    build_attack,
)
from benchmark.attacks.modifiers.admix import Admix
from benchmark.attacks.modifiers.bsr import BlockShuffleRotation, rotate
from benchmark.attacks.modifiers.di import DiverseInputs
from benchmark.attacks.modifiers.ssa import SpectrumSimulation, dct2, dct_matrix, idct2
from benchmark.attacks.modifiers.ti import TranslationInvariant
from benchmark.attacks.rng import PerImageRNG

from .conftest import TinySegNet, gens

EPS = 8 / 255
TOL = 1e-6


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def rng_of(x: torch.Tensor) -> PerImageRNG:
    """A PerImageRNG for x's batch (its draws are scripted in the tests that use it)."""
    return PerImageRNG(gens(x.shape[0]), x.shape[0], x.device)


class Script:
    """Makes ``PerImageRNG`` return the given draws, in order, checking their kind and shape."""

    def __init__(self, monkeypatch) -> None:
        self.queue: deque = deque()
        monkeypatch.setattr(PerImageRNG, "uniform", lambda rng, shape=(): self._next("uniform", rng, shape))
        monkeypatch.setattr(PerImageRNG, "normal", lambda rng, shape=(): self._next("normal", rng, shape))
        monkeypatch.setattr(PerImageRNG, "uniform_host", lambda rng, shape=(): self._next("host", rng, shape))

    def add(self, kind: str, value) -> None:
        self.queue.append((kind, value))

    def _next(self, kind, rng, shape):
        assert self.queue, f"ours drew one {kind} {shape} more than the reference"
        want, value = self.queue.popleft()
        size = tuple(torch.tensor(value).shape) if want == "host" else tuple(value.shape)
        assert (want, size) == (kind, (rng.n, *shape)), f"ours drew {kind} {(rng.n, *shape)}, reference {want} {size}"
        return value if kind == "host" else value.to(rng.device, rng.dtype)

    def finished(self) -> None:
        assert not self.queue, f"ours left {len(self.queue)} of the reference's draws unused"


@pytest.fixture
def script(monkeypatch):
    return Script(monkeypatch)


class PooledClassifier(nn.Module):
    """A classifier (3x3 conv, tanh, global mean, linear) whose K logits are copied to every pixel."""

    def __init__(self, classes: int = 4, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, classes)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen))

    def classify(self, x):
        return self.fc(torch.tanh(self.conv(x)).mean(dim=(2, 3)))

    def forward(self, x):
        return self.classify(x)[:, :, None, None].expand(-1, -1, *x.shape[-2:])


def seg_case(n=2, h=11, w=13, seed=0):
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, h, w, generator=gen)
    labels = torch.randint(0, 4, (n, h, w), generator=gen)  # no ignored pixels: the references have none
    return TinySegNet(seed=1).eval(), images, labels


def cls_case(n=1, h=16, w=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, h, w, generator=gen)
    classes = torch.randint(0, 4, (n,), generator=gen)
    return PooledClassifier(seed=seed + 1).eval(), images, classes, classes[:, None, None].expand(n, h, w).clone()


# ================================================================ torchattacks: MI, NI, SI-NI, VMI, VNI


def ref_mifgsm(model, images, labels, eps, alpha, steps, decay):
    # torchattacks/attacks/mifgsm.py, MIFGSM.forward (untargeted)
    loss = nn.CrossEntropyLoss()
    momentum = torch.zeros_like(images)
    adv_images = images.clone()
    for _ in range(steps):
        adv_images.requires_grad = True
        cost = loss(model(adv_images), labels)
        grad = torch.autograd.grad(cost, adv_images)[0]
        grad = grad / torch.mean(torch.abs(grad), dim=(1, 2, 3), keepdim=True)
        grad = grad + momentum * decay
        momentum = grad
        adv_images = adv_images.detach() + alpha * grad.sign()
        delta = torch.clamp(adv_images - images, min=-eps, max=eps)
        adv_images = torch.clamp(images + delta, min=0, max=1).detach()
    return adv_images


def ref_nifgsm(model, images, labels, eps, alpha, steps, decay):
    # torchattacks/attacks/nifgsm.py, NIFGSM.forward
    loss = nn.CrossEntropyLoss()
    momentum = torch.zeros_like(images)
    adv_images = images.clone()
    for _ in range(steps):
        adv_images.requires_grad = True
        nes_images = adv_images + decay * alpha * momentum
        cost = loss(model(nes_images), labels)
        grad = torch.autograd.grad(cost, adv_images)[0]
        grad = decay * momentum + grad / torch.mean(torch.abs(grad), dim=(1, 2, 3), keepdim=True)
        momentum = grad
        adv_images = adv_images.detach() + alpha * grad.sign()
        delta = torch.clamp(adv_images - images, min=-eps, max=eps)
        adv_images = torch.clamp(images + delta, min=0, max=1).detach()
    return adv_images


def ref_sinifgsm(model, images, labels, eps, alpha, steps, decay, m):
    # torchattacks/attacks/sinifgsm.py, SINIFGSM.forward
    loss = nn.CrossEntropyLoss()
    momentum = torch.zeros_like(images)
    adv_images = images.clone()
    for _ in range(steps):
        adv_images.requires_grad = True
        nes_image = adv_images + decay * alpha * momentum
        adv_grad = torch.zeros_like(images)
        for i in torch.arange(m):
            nes_images = nes_image / torch.pow(2, i)
            cost = loss(model(nes_images), labels)
            adv_grad += torch.autograd.grad(cost, adv_images)[0]
        adv_grad = adv_grad / m
        grad = decay * momentum + adv_grad / torch.mean(torch.abs(adv_grad), dim=(1, 2, 3), keepdim=True)
        momentum = grad
        adv_images = adv_images.detach() + alpha * grad.sign()
        delta = torch.clamp(adv_images - images, min=-eps, max=eps)
        adv_images = torch.clamp(images + delta, min=0, max=1).detach()
    return adv_images


def ref_vfgsm(model, images, labels, eps, alpha, steps, decay, n_samples, beta, uniforms, nesterov):
    # torchattacks/attacks/vmifgsm.py VMIFGSM.forward (nesterov=False) and vnifgsm.py VNIFGSM.forward
    # (nesterov=True). Both draw the neighbours around adv_images, x^t, as the authors' vmi_fgsm.py /
    # vni_fgsm.py do (JHL-HUST/VT, batch_grad(x, ...)). ``uniforms`` yields the U[0, 1) tensor u behind each
    # ``torch.randn_like(images).uniform_(-r, r)`` = -r + 2 r u.
    loss = nn.CrossEntropyLoss()
    momentum = torch.zeros_like(images)
    v = torch.zeros_like(images)
    adv_images = images.clone()
    for _ in range(steps):
        adv_images.requires_grad = True
        nes_images = adv_images + decay * alpha * momentum if nesterov else adv_images
        cost = loss(model(nes_images), labels)
        adv_grad = torch.autograd.grad(cost, adv_images)[0]
        grad = (adv_grad + v) / torch.mean(torch.abs(adv_grad + v), dim=(1, 2, 3), keepdim=True)
        grad = grad + momentum * decay
        momentum = grad
        centre_images = adv_images.detach()
        GV_grad = torch.zeros_like(images)
        r = eps * beta
        for _ in range(n_samples):
            neighbor_images = centre_images + (-r + 2 * r * next(uniforms))
            neighbor_images.requires_grad = True
            cost = loss(model(neighbor_images), labels)
            GV_grad += torch.autograd.grad(cost, neighbor_images)[0]
        v = GV_grad / n_samples - adv_grad
        adv_images = adv_images.detach() + alpha * grad.sign()
        delta = torch.clamp(adv_images - images, min=-eps, max=eps)
        adv_images = torch.clamp(images + delta, min=0, max=1).detach()
    return adv_images


def test_bim_mi_is_torchattacks_mifgsm():
    model, images, labels = seg_case()
    ours = build_attack("bim+mi", eps=EPS, alpha=EPS / 8, steps=8)(model, images, labels, gens(2))
    assert max_diff(ours, ref_mifgsm(model, images, labels, EPS, EPS / 8, 8, 1.0)) < TOL
    preset = build_attack("mifgsm", eps=EPS, steps=8)(model, images, labels, gens(2))
    assert max_diff(preset, ours) < TOL  # the preset is bim+mi with alpha = eps / T


def test_nifgsm_is_torchattacks_nifgsm():
    model, images, labels = seg_case()
    ours = build_attack("nifgsm", eps=EPS, steps=8)(model, images, labels, gens(2))
    assert max_diff(ours, ref_nifgsm(model, images, labels, EPS, EPS / 8, 8, 1.0)) < TOL


def test_bim_ni_si_is_torchattacks_sinifgsm():
    model, images, labels = seg_case()
    ours = build_attack("bim+ni+si", eps=EPS, alpha=EPS / 6, steps=6, scale_copies=5)(model, images, labels, gens(2))
    assert max_diff(ours, ref_sinifgsm(model, images, labels, EPS, EPS / 6, 6, 1.0, 5)) < TOL


def vt_draws(script, images, steps, samples, seed=7):
    """The neighbour draws of a VT run: given to ours (scripted) and returned for the reference."""
    gen = torch.Generator().manual_seed(seed)
    us = [torch.rand(images.shape, generator=gen) for _ in range(steps * samples)]
    for u in us:
        script.add("uniform", u)
    return us


def test_bim_mi_vt_with_a_vanishing_neighbourhood_is_mifgsm(script):
    model, images, labels = seg_case()
    us = vt_draws(script, images, 6, 2)
    ours = build_attack("bim+mi+vt", eps=EPS, alpha=EPS / 6, steps=6, vt_samples=2, vt_beta=1e-12)(
        model, images, labels, gens(2))
    script.finished()
    ref = ref_vfgsm(model, images, labels, EPS, EPS / 6, 6, 1.0, 2, 1e-12, iter(us), nesterov=False)
    assert max_diff(ours, ref) < TOL
    assert max_diff(ours, ref_mifgsm(model, images, labels, EPS, EPS / 6, 6, 1.0)) < TOL


def test_bim_mi_vt_is_torchattacks_vmifgsm_with_the_same_neighbours(script):
    model, images, labels = seg_case()
    us = vt_draws(script, images, 6, 4)
    ours = build_attack("bim+mi+vt", eps=EPS, alpha=EPS / 6, steps=6, vt_samples=4, vt_beta=1.5)(
        model, images, labels, gens(2))
    script.finished()
    ref = ref_vfgsm(model, images, labels, EPS, EPS / 6, 6, 1.0, 4, 1.5, iter(us), nesterov=False)
    assert max_diff(ours, ref) < TOL
    # the neighbourhood matters: the same run without VT moves other pixels
    assert max_diff(ref, ref_mifgsm(model, images, labels, EPS, EPS / 6, 6, 1.0)) > EPS / 6


def test_bim_ni_vt_is_torchattacks_vnifgsm(script):
    """VNI's neighbours are drawn around the iterate x^t, its gradient taken at the look-ahead point."""
    model, images, labels = seg_case()
    us = vt_draws(script, images, 6, 3)
    ours = build_attack("bim+ni+vt", eps=EPS, alpha=EPS / 6, steps=6, vt_samples=3, vt_beta=1.5)(
        model, images, labels, gens(2))
    ref = ref_vfgsm(model, images, labels, EPS, EPS / 6, 6, 1.0, 3, 1.5, iter(us), nesterov=True)
    assert max_diff(ours, ref) < TOL


# ================================================================ TI: torchattacks TIFGSM


def ref_gkern(kernlen=15, nsig=3):
    # torchattacks/attacks/tifgsm.py, TIFGSM.gkern (= gkern in dongyp13/Translation-Invariant-Attacks
    # attack_iter.py, used there as gkern(15, 3)): np.linspace, scipy st.norm.pdf, outer, / sum, float64
    x = torch.linspace(-nsig, nsig, kernlen, dtype=torch.float64)
    kern1d = torch.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    kernel_raw = torch.outer(kern1d, kern1d)
    return kernel_raw / kernel_raw.sum()


def ref_tifgsm(model, images, labels, eps, alpha, steps, decay, len_kernel=15, nsig=3):
    # torchattacks/attacks/tifgsm.py, TIFGSM.forward with diversity_prob=0 (its input_diversity then
    # returns the input) and kernel_generation (float32 kernel stacked for groups=3)
    kernel = ref_gkern(len_kernel, nsig).float()
    stacked_kernel = torch.stack([kernel, kernel, kernel]).unsqueeze(1)
    loss = nn.CrossEntropyLoss()
    momentum = torch.zeros_like(images)
    adv_images = images.clone()
    for _ in range(steps):
        adv_images.requires_grad = True
        cost = loss(model(adv_images), labels)
        grad = torch.autograd.grad(cost, adv_images)[0]
        grad = F.conv2d(grad, stacked_kernel, stride=1, padding="same", groups=3)
        grad = grad / torch.mean(torch.abs(grad), dim=(1, 2, 3), keepdim=True)
        grad = grad + momentum * decay
        momentum = grad
        adv_images = adv_images.detach() + alpha * grad.sign()
        delta = torch.clamp(adv_images - images, min=-eps, max=eps)
        adv_images = torch.clamp(images + delta, min=0, max=1).detach()
    return adv_images


@pytest.mark.parametrize("kernel_size, nsig", [(15, 3.0), (7, 3.0), (5, 2.0)])
def test_ti_smoothing_is_the_gkern_convolution(kernel_size, nsig):
    """Our separable kernel equals torchattacks' k x k gkern convolution (zero padding, 'same')."""
    assert (TISettings().kernel_size, TISettings().nsig) == (15, 3.0)  # torchattacks' len_kernel=15, nsig=3
    grad = torch.randn(2, 3, 19, 23, generator=torch.Generator().manual_seed(0))
    ti = TranslationInvariant(TISettings(kernel_size=kernel_size, nsig=nsig))
    ours, _ = ti(grad, ti.init(grad))
    kernel = ref_gkern(kernel_size, nsig).float()
    ref = F.conv2d(grad, torch.stack([kernel] * 3).unsqueeze(1), stride=1, padding="same", groups=3)
    assert max_diff(ours, ref) < TOL


@pytest.mark.parametrize("name, decay", [("tifgsm", 0.0), ("bim+mi+ti", 1.0)])
def test_ti_attacks_are_torchattacks_tifgsm(name, decay):
    model, images, labels = seg_case(h=17, w=19)
    ours = build_attack(name, eps=EPS, alpha=EPS / 6, steps=6)(model, images, labels, gens(2))
    assert max_diff(ours, ref_tifgsm(model, images, labels, EPS, EPS / 6, 6, decay)) < TOL


# ================================================================ DI: torchattacks DIFGSM, Xie et al.


class Draws:
    """The reference's own draw calls, answered from a queue; randint checks torch.randint's range."""

    def __init__(self, values) -> None:
        self.values = deque(values)

    def randint(self, low, high):
        value = self.values.popleft()
        assert low <= value < high, f"{value} outside torch.randint's [{low}, {high})"
        return value

    def rand(self):
        return self.values.popleft()


def ref_input_diversity(x, resize_rate, diversity_prob, draws, mode="bilinear"):
    # torchattacks/attacks/difgsm.py, DIFGSM.input_diversity. mode="nearest" gives the authors' version
    # (cihangxie/DI-2-FGSM attack.py, input_diversity: NEAREST_NEIGHBOR, canvas image_resize, same draws);
    # torchattacks resizes bilinearly (TransferAttack dim.py too, and it then resizes the canvas back).
    img_size = x.shape[-1]
    img_resize = int(img_size * resize_rate)
    if resize_rate < 1:
        img_size = img_resize
        img_resize = x.shape[-1]
    rnd = draws.randint(img_size, img_resize)
    extra = {"align_corners": False} if mode == "bilinear" else {}
    rescaled = F.interpolate(x, size=[rnd, rnd], mode=mode, **extra)
    h_rem = img_resize - rnd
    w_rem = img_resize - rnd
    pad_top = draws.randint(0, h_rem)
    pad_bottom = h_rem - pad_top
    pad_left = draws.randint(0, w_rem)
    pad_right = w_rem - pad_left
    padded = F.pad(rescaled, [pad_left, pad_right, pad_top, pad_bottom], value=0)
    return padded if draws.rand() < diversity_prob else x


def ref_difgsm(model, images, labels, eps, alpha, steps, decay, resize_rate, diversity_prob, draws, mode):
    # torchattacks/attacks/difgsm.py, DIFGSM.forward (random_start=False)
    loss = nn.CrossEntropyLoss()
    momentum = torch.zeros_like(images)
    adv_images = images.clone()
    for _ in range(steps):
        adv_images.requires_grad = True
        outputs = model(ref_input_diversity(adv_images, resize_rate, diversity_prob, draws, mode))
        cost = loss(outputs, labels)
        grad = torch.autograd.grad(cost, adv_images)[0]
        grad = grad / torch.mean(torch.abs(grad), dim=(1, 2, 3), keepdim=True)
        grad = grad + momentum * decay
        momentum = grad
        adv_images = adv_images.detach() + alpha * grad.sign()
        delta = torch.clamp(adv_images - images, min=-eps, max=eps)
        adv_images = torch.clamp(images + delta, min=0, max=1).detach()
    return adv_images


def di_draws(script, steps, size, rate, seed=3):
    """Per step one reference draw (rnd, top, left, u_apply) inside the reference's ranges, and the
    same sizes and offsets for our (one) image: u = (value - low + 1/2) / (our range's count)."""
    gen = torch.Generator().manual_seed(seed)
    hi = math.floor(rate * size)
    values = []
    for _ in range(steps):
        rnd = int(torch.randint(size, hi, (1,), generator=gen))
        top, left = (int(torch.randint(0, hi - rnd, (1,), generator=gen)) for _ in range(2))
        u_apply = float(torch.rand(1, generator=gen))
        values += [rnd, top, left, u_apply]
        u_size = (rnd - size + 0.5) / (hi - size + 1)
        u_top, u_left = ((v + 0.5) / (hi - rnd + 1) for v in (top, left))
        script.add("host", [[u_apply, u_size, u_size, u_top, u_left]])
    return Draws(values)


def test_difgsm_is_torchattacks_difgsm_with_nearest_resize(script):
    """Same draws, one square image, a classifier source: ours equals DIFGSM (decay 0) with the
    authors' nearest resize; torchattacks' own bilinear resize is pinned in the next test."""
    model, images, classes, labels = cls_case(h=30, w=30)
    draws = di_draws(script, 8, 30, 1.1)
    ours = build_attack("difgsm", eps=EPS, steps=8, resize_rate=1.1, diversity_prob=0.5)(model, images, labels, gens(1))
    script.finished()
    ref = ref_difgsm(model.classify, images, classes, EPS, EPS / 8, 8, 0.0, 1.1, 0.5, draws, mode="nearest")
    assert not draws.values
    assert max_diff(ours, ref) < TOL


def test_di_canvas_differences_from_torchattacks_are_pinned(script):
    x = torch.rand(1, 3, 30, 30, generator=torch.Generator().manual_seed(1))
    di = DiverseInputs(DISettings(resize_rate=1.1, diversity_prob=0.5))
    # draws inside the references' ranges (size 31 of [30, 33), top 0, left 1 of [0, 2)): ours places the
    # nearest resize exactly as the authors' code ...
    script.add("host", [[0.1, (31 - 30 + 0.5) / 4, (31 - 30 + 0.5) / 4, 0.5 / 3, 1.5 / 3]])
    ((canvas,), _, _) = di(x, rng_of(x))[0]
    assert torch.equal(canvas, ref_input_diversity(x, 1.1, 0.5, Draws([31, 0, 1, 0.1]), mode="nearest"))
    # ... where torchattacks resizes bilinearly
    assert max_diff(canvas, ref_input_diversity(x, 1.1, 0.5, Draws([31, 0, 1, 0.1]), mode="bilinear")) > 0.05
    # ours draws from {lo, ..., hi}: the resize may fill the whole canvas, torch.randint(lo, hi) never does
    script.add("host", [[0.1, 0.999, 0.999, 0.999, 0.999]])
    ((canvas,), _, _) = di(x, rng_of(x))[0]
    assert torch.equal(canvas, F.interpolate(x, size=(33, 33), mode="nearest"))
    with pytest.raises(AssertionError, match="outside torch.randint"):
        ref_input_diversity(x, 1.1, 0.5, Draws([33, 0, 0, 0.1]))
    script.finished()


def test_di_per_image_sizes_and_logits_mapped_back(script):
    """On purpose: each image draws its own transform (the references draw one per batch, square from
    the width), and ``back`` maps the canvas logits onto the label grid (the references compare the
    canvas's class logits with image-level labels; segmentation labels have the input's shape)."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 20), torch.linspace(0, 1, 30), indexing="ij")
    x = torch.stack([torch.stack([yy, xx, (yy + xx) / 2]) + 0.1 * i for i in range(2)])  # smooth images
    di = DiverseInputs(DISettings(resize_rate=1.1, diversity_prob=0.5))
    script.add("host", [[0.1, 0.4, 0.6, 0.5, 0.5], [0.9, 0.4, 0.6, 0.5, 0.5]])
    ((plain, canvas), back, _) = di(x, rng_of(x))[0]
    script.finished()
    assert torch.equal(plain, x[1:]) and canvas.shape == (1, 3, 22, 33)  # (floor 1.1 H, floor 1.1 W)
    assert ref_input_diversity(x, 1.1, 1.0, Draws([31, 0, 0, 0.1])).shape == (2, 3, 33, 33)
    restored = back([plain, canvas])  # an identity "model": logits are the image
    assert restored.shape == x.shape and torch.equal(restored[1], x[1])
    assert (restored[0] - x[0]).abs().max() < 0.1  # the content of each pixel is back at its label


# ================================================================ Admix: TransferAttack / JHL-HUST/Admix


def ref_admix_attack(model, data, label, epsilon, alpha, epoch, decay, num_scale, num_admix, admix_strength, perms):
    # TransferAttack transferattack/attack.py Attack.forward (init_delta, update_delta: linfty, clamp to
    # [img_min, img_max] = [0, 1]) with gradient/mifgsm.py MIFGSM.get_momentum and
    # input_transformation/admix.py Admix.transform / get_loss; ``perms`` yields each torch.randperm(N).
    # The authors' TensorFlow mi_admix.py (JHL-HUST/Admix, admix + graph) computes the same direction:
    # gradients at the copies times 1/2^i, mean over scales, sum over mixes, normalised.
    loss_fn = nn.CrossEntropyLoss()
    delta = torch.zeros_like(data, requires_grad=True)
    momentum = 0
    for _ in range(epoch):
        x = data + delta
        admix_images = torch.concat([(x + admix_strength * x[next(perms)].detach()) for _ in range(num_admix)], dim=0)
        logits = model(torch.concat([admix_images / (2**i) for i in range(num_scale)]))
        loss = loss_fn(logits, label.repeat(num_scale * num_admix))
        grad = torch.autograd.grad(loss, delta)[0]
        momentum = momentum * decay + grad / (grad.abs().mean(dim=(1, 2, 3), keepdim=True))
        delta = torch.clamp(delta + alpha * momentum.sign(), -epsilon, epsilon)
        delta = torch.min(torch.max(delta, 0.0 - data), 1.0 - data)
        delta = delta.detach().requires_grad_(True)
    return (data + delta).detach()


def admix_draws(script, steps, n, mixes, seed=5):
    """Per step and mix a permutation without fixed points (ours never mixes an image with itself) and
    the per-image draws that make our 'batch' source pick the same partners."""
    gen = torch.Generator().manual_seed(seed)
    perms = []
    for _ in range(steps):
        rows = [[] for _ in range(n)]
        for _ in range(mixes):
            perm = torch.randperm(n, generator=gen)
            while (perm == torch.arange(n)).any():
                perm = torch.randperm(n, generator=gen)
            perms.append(perm)
            for i, p in enumerate(perm.tolist()):
                other = p if p < i else p - 1  # our index among the other images
                rows[i].append([0.5, 0.5, (other + 0.5) / (n - 1)])
        script.add("host", rows)
    return iter(perms)


def test_admix_batch_source_is_transferattack_admix(script):
    model, images, classes, labels = cls_case(n=3, h=12, w=12)
    perms = admix_draws(script, 4, 3, 3)
    ours = build_attack("bim+mi+admix", eps=EPS, alpha=EPS / 4, steps=4, admix_copies=5, admix_mixes=3,
                        admix_strength=0.2, admix_source="batch")(model, images, labels, gens(3))
    script.finished()
    ref = ref_admix_attack(model.classify, images, classes, EPS, EPS / 4, 4, 1.0, 5, 3, 0.2, perms)
    assert max_diff(ours, ref) < TOL


def test_admix_partner_differences_are_pinned(script):
    """On purpose: the default partner is the image itself, rolled (per-image results cannot depend on
    the batch); 'batch' picks another image per image (randperm may pick the image itself)."""
    x = torch.rand(1, 3, 6, 7, generator=torch.Generator().manual_seed(3))
    script.add("host", [[[0.5, 0.5, 0.5]]])
    ((copy, _),) = Admix(AdmixSettings(admix_copies=1, admix_mixes=1, admix_strength=0.2))(x, rng_of(x))
    script.finished()
    assert torch.allclose(copy, x + 0.2 * torch.roll(x, (3, 3), (2, 3)), atol=TOL)
    # the reference with a batch of one mixes the image with itself: 1.2 x
    own = torch.concat([(x + 0.2 * x[torch.tensor([0])]) for _ in range(1)])
    assert torch.allclose(own, 1.2 * x) and max_diff(copy, own) > 0.05


# ================================================================ SSA: yuyang-long/SSA


def ref_dct(x):
    # yuyang-long/SSA dct.py, dct(x, norm=None): DCT-II over the last dimension through an FFT
    x_shape = x.shape
    N = x_shape[-1]
    x = x.contiguous().view(-1, N)
    v = torch.cat([x[:, ::2], x[:, 1::2].flip([1])], dim=1)
    Vc = torch.fft.fft(v)
    k = -torch.arange(N, dtype=x.dtype)[None, :] * math.pi / (2 * N)
    V = Vc.real * torch.cos(k) - Vc.imag * torch.sin(k)
    return 2 * V.view(*x_shape)


def ref_idct(X):
    # yuyang-long/SSA dct.py, idct(X, norm=None): the inverse of dct through an inverse FFT
    x_shape = X.shape
    N = x_shape[-1]
    X_v = X.contiguous().view(-1, N) / 2
    k = torch.arange(N, dtype=X.dtype)[None, :] * math.pi / (2 * N)
    W_r, W_i = torch.cos(k), torch.sin(k)
    V_t_r = X_v
    V_t_i = torch.cat([X_v[:, :1] * 0, -X_v.flip([1])[:, :-1]], dim=1)
    V_r = V_t_r * W_r - V_t_i * W_i
    V_i = V_t_r * W_i + V_t_i * W_r
    v = torch.fft.ifft(torch.complex(real=V_r, imag=V_i))
    x = v.new_zeros(v.shape)
    x[:, ::2] += v[:, : N - (N // 2)]
    x[:, 1::2] += v.flip([1])[:, : N // 2]
    return x.view(*x_shape).real


def ref_dct_2d(x):
    # yuyang-long/SSA dct.py, dct_2d (norm=None, as attack.py calls it)
    return ref_dct(ref_dct(x).transpose(-1, -2)).transpose(-1, -2)


def ref_idct_2d(X):
    # yuyang-long/SSA dct.py, idct_2d
    return ref_idct(ref_idct(X).transpose(-1, -2)).transpose(-1, -2)


def ref_clip_by_tensor(t, t_min, t_max):
    # yuyang-long/SSA attack.py, clip_by_tensor
    result = (t >= t_min).float() * t + (t < t_min).float() * t_min
    return (result <= t_max).float() * result + (result > t_max).float() * t_max


def ref_ssa_attack(images, gt, model, min, max, eps, num_iter, N, rho, sigma, normals, uniforms):
    # yuyang-long/SSA attack.py, Spectrum_Simulation_Attack (its DI, TI and MI lines are commented out;
    # TransferAttack ssm.py is the same with MI). ``normals`` / ``uniforms`` yield the torch.randn /
    # torch.rand_like draws. The gradient is taken at x_idct (V(x_idct, requires_grad=True)).
    alpha = eps / num_iter
    x = images.clone()
    for _ in range(num_iter):
        noise = 0
        for _ in range(N):
            gauss = next(normals) * sigma
            x_dct = ref_dct_2d(x + gauss)
            mask = next(uniforms) * 2 * rho + 1 - rho
            x_idct = ref_idct_2d(x_dct * mask)
            x_idct = x_idct.detach().requires_grad_(True)
            loss = F.cross_entropy(model(x_idct), gt)
            noise += torch.autograd.grad(loss, x_idct)[0]
        noise = noise / N
        x = x + alpha * torch.sign(noise)
        x = ref_clip_by_tensor(x, min, max)
    return x.detach()


def ssa_draws(script, shape, count, seed=11):
    gen = torch.Generator().manual_seed(seed)
    normals, uniforms = [], []
    for _ in range(count):
        normals.append(torch.randn(shape, generator=gen))
        uniforms.append(torch.rand(shape, generator=gen))
        script.add("normal", normals[-1])
        script.add("uniform", uniforms[-1])
    return iter(normals), iter(uniforms)


def test_ssa_copies_are_the_authors_spectrum_transform(script):
    """Our orthonormal matrix DCT and the authors' FFT DCT (norm=None) give the same copies: the
    normalisation is a per-frequency scale that the inverse undoes and the mask commutes with."""
    x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(4))
    normals, uniforms = ssa_draws(script, x.shape, 3)
    copies = SpectrumSimulation(SSASettings(ssa_copies=3, ssa_rho=0.5), IterativeSettings(eps=EPS))(
        x, rng_of(x))
    script.finished()
    for copy, weight in copies:
        ref = ref_idct_2d(ref_dct_2d(x + next(normals) * EPS) * (next(uniforms) * 2 * 0.5 + 1 - 0.5))
        assert weight == pytest.approx(1 / 3) and max_diff(copy, ref) < TOL
    # the two DCT conventions differ by the per-frequency scale a_k a_l, a_0 = 2 sqrt(n), a_k = sqrt(2 n)
    d = dct_matrix(12)
    a = torch.full((12,), math.sqrt(24.0))
    a[0] = 2 * math.sqrt(12.0)
    assert torch.allclose(ref_dct_2d(x), torch.outer(a, a) * dct2(x, d, d), rtol=1e-5, atol=1e-4)
    assert max_diff(idct2(dct2(x, d, d), d, d), ref_idct_2d(ref_dct_2d(x))) < TOL


def test_bim_ssa_is_the_authors_spectrum_simulation_attack(script):
    model, images, labels = seg_case(h=12, w=12)
    steps, copies, sigma = 4, 3, 16 / 255
    normals, uniforms = ssa_draws(script, images.shape, steps * copies)
    ours = build_attack("bim+ssa", eps=EPS, alpha=EPS / steps, steps=steps, ssa_copies=copies, ssa_rho=0.5,
                        ssa_sigma=sigma)(model, images, labels, gens(2))
    script.finished()
    low, high = ref_clip_by_tensor(images - EPS, 0.0, 1.0), ref_clip_by_tensor(images + EPS, 0.0, 1.0)
    ref = ref_ssa_attack(images, labels, model, low, high, EPS, steps, copies, 0.5, sigma, normals, uniforms)
    assert max_diff(ours, ref) < TOL


# ================================================================ BSR: Trustworthy-AI-Group/BSR, TransferAttack


def ref_get_length(length, num_block, rand):
    # Trustworthy-AI-Group/BSR mi_bsr.py, get_length: lengths proportional to np.random.uniform(size=num_block),
    # rounded, the largest absorbing the remainder (``rand`` is that draw)
    rand_norm = torch.round(rand * length / rand.sum()).to(torch.int64)
    rand_norm[rand_norm.argmax()] += length - rand_norm.sum()
    return tuple(int(v) for v in rand_norm)


def ref_tfa_rotate(images, angles):
    # tensorflow_addons image/transform_ops.py, rotate(interpolation="BILINEAR") = angles_to_projective_transforms
    # + ImageProjectiveTransformV3 (tensorflow image_ops.h, fill_mode constant, fill_value 0): output pixel
    # (x, y) reads the input at (cos x - sin y + x_offset, sin x + cos y + y_offset), bilinear over the
    # floor / ceil neighbours, each neighbour outside the image read as 0. angles: (N,) radians, counterclockwise.
    _, _, h, w = images.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=images.dtype), torch.arange(w, dtype=images.dtype), indexing="ij")
    out = []
    for img, angle in zip(images, angles.tolist()):
        cos, sin = math.cos(angle), math.sin(angle)
        x_offset = ((w - 1) - (cos * (w - 1) - sin * (h - 1))) / 2.0
        y_offset = ((h - 1) - (sin * (w - 1) + cos * (h - 1))) / 2.0
        x = cos * xs - sin * ys + x_offset
        y = sin * xs + cos * ys + y_offset
        x_floor, y_floor = torch.floor(x), torch.floor(y)
        x_ceil, y_ceil = x_floor + 1, y_floor + 1

        def read(yy, xx, img=img):
            inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
            value = img[:, yy.clamp(0, h - 1).long(), xx.clamp(0, w - 1).long()]
            return torch.where(inside, value, torch.zeros_like(value))

        value_yfloor = (x_ceil - x) * read(y_floor, x_floor) + (x - x_floor) * read(y_floor, x_ceil)
        value_yceil = (x_ceil - x) * read(y_ceil, x_floor) + (x - x_floor) * read(y_ceil, x_ceil)
        out.append((y_ceil - y) * value_yfloor + (y - y_floor) * value_yceil)
    return torch.stack(out)


def ref_shuffle_rotate(x, width_length, height_length, width_perm, height_perm, angles):
    # Trustworthy-AI-Group/BSR mi_bsr.py, shuffle_rotate, in NCHW (its NHWC axis 1 'width' is our H): rows
    # cut at width_length and permuted by width_perm; every strip cut at the same height_length and permuted
    # by the same height_perm; each block rotated by tfa.image.rotate with its own per-image angles
    # (angles[k][l], (N,), the tf.truncated_normal([N], stddev=max_angles) of output block (k, l)).
    x_split_w = torch.split(x, list(width_length), dim=2)
    x_split_h_l = [torch.split(x_split_w[i], list(height_length), dim=3) for i in width_perm]
    return torch.cat([torch.cat([ref_tfa_rotate(strip[i], angles[k][l]) for l, i in enumerate(height_perm)], dim=3)
                      for k, strip in enumerate(x_split_h_l)], dim=2)


def ref_mi_bsr(model, images, labels, eps, num_iter, momentum, num_copies, layouts):
    # Trustworthy-AI-Group/BSR mi_bsr.py, graph with BSR(x) (num_copies shuffle_rotate copies), in [0, 1]
    # pixels: x_min / x_max = clip(x -/+ eps) like its [-1, 1] version; softmax_cross_entropy is a batch mean.
    alpha = eps / num_iter
    x_min, x_max = (images - eps).clamp(0, 1), (images + eps).clamp(0, 1)
    x, grad = images.clone(), torch.zeros_like(images)
    for _ in range(num_iter):
        x = x.detach().requires_grad_(True)
        x_batch = torch.cat([ref_shuffle_rotate(x, *next(layouts)) for _ in range(num_copies)])
        cross_entropy = F.cross_entropy(model(x_batch), labels.repeat(num_copies))
        noise = torch.autograd.grad(cross_entropy, x)[0]
        noise = noise / noise.abs().mean(dim=(1, 2, 3), keepdim=True)
        noise = momentum * grad + noise
        x = torch.min(torch.max(x + alpha * torch.sign(noise), x_min), x_max)
        grad = noise
    return x.detach()


def bsr_layout(gen, n_img, h, w, n=2, max_angles=0.2):
    """One copy's layout by the authors' rules (lengths, permutations, truncated normal angles)."""
    while True:
        rows, cols = (ref_get_length(size, n, torch.rand(n, generator=gen, dtype=torch.float64)) for size in (h, w))
        if min(rows + cols) > 0:  # a zero-length block is a no-op in both; ours merges such cuts
            break
    width_perm, height_perm = (torch.randperm(n, generator=gen).tolist() for _ in range(2))
    angles = [[None] * n for _ in range(n)]
    for k in range(n):
        for l in range(n):
            z = torch.randn(n_img, generator=gen)
            while (z.abs() > 2).any():  # truncated at two standard deviations
                z = torch.where(z.abs() > 2, torch.randn(n_img, generator=gen), z)
            angles[k][l] = max_angles * z
    return rows, cols, width_perm, height_perm, angles


def our_bsr_draws(layout, h, w, tau, n_img):
    """Our per-image draws for a layout: cut positions, keys ordering the strips / pieces, angles. Ours
    rotates by -theta where tfa / torchvision rotate by theta (pinned in the rotation test)."""
    rows, cols, width_perm, height_perm, angles = layout
    n = len(rows)
    cut_u = lambda lengths, size: [(sum(lengths[:j + 1]) - 1 + 0.5) / (size - 1) for j in range(n - 1)]  # noqa: E731
    keys = lambda perm: [(perm.index(i) + 0.5) / n for i in range(n)]  # noqa: E731
    draws = []
    for img in range(n_img):
        d = cut_u(rows, h) + keys(width_perm)
        for k in range(n):
            piece_angle = [0.0] * n
            for l, i in enumerate(height_perm):
                piece_angle[i] = (1 - float(angles[k][l][img]) / tau) / 2  # ours: (2u - 1) tau = -theta
            d += cut_u(cols, w) + keys(height_perm) + piece_angle
        draws.append(d)
    return draws


def test_bsr_copy_is_the_authors_shuffle_rotate(script):
    """Same layout and angles: our copy is mi_bsr.py's shuffle_rotate (a grid: equal column cuts and
    permutation in every strip, each block rotated about its own centre). In float64: in float32 the
    sampling coordinates of the two rotations differ by ~1e-6 pixel (the whole attack below is float32)."""
    x = torch.rand(2, 3, 14, 18, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    gen = torch.Generator().manual_seed(8)
    tau = math.radians(24.0)
    layouts = [bsr_layout(gen, 2, 14, 18) for _ in range(2)]
    for layout in layouts:
        script.add("host", our_bsr_draws(layout, 14, 18, tau, 2))
    views = BlockShuffleRotation(BSRSettings(bsr_blocks=2, bsr_copies=2, bsr_angle=24.0))(x, rng_of(x))
    script.finished()
    for (inputs, _, _), layout in zip(views, layouts):
        assert max_diff(inputs[0], ref_shuffle_rotate(x, *layout)) < TOL


def test_bim_mi_bsr_is_the_authors_mi_bsr_for_a_classifier(script):
    model, images, classes, labels = cls_case(n=2, h=14, w=18)
    gen = torch.Generator().manual_seed(9)
    tau = math.radians(24.0)
    layouts = [bsr_layout(gen, 2, 14, 18) for _ in range(3 * 2)]
    for layout in layouts:
        script.add("host", our_bsr_draws(layout, 14, 18, tau, 2))
    ours = build_attack("bim+mi+bsr", eps=EPS, alpha=EPS / 3, steps=3, bsr_blocks=2, bsr_copies=2, bsr_angle=24.0)(
        model, images, labels, gens(2))
    script.finished()
    ref = ref_mi_bsr(model.classify, images, classes, EPS, 3, 1.0, 2, iter(layouts))
    assert max_diff(ours, ref) < TOL


def ref_tv_rotate(img, angle):
    # torchvision transforms/functional.py rotate (center None -> [0, 0]; matrix from
    # _get_inverse_affine_matrix(center, -angle, [0, 0], 1, [0, 0])) -> _functional_tensor.py rotate,
    # _gen_affine_grid, _apply_grid_transform with fill = [0.0] * C (T.RandomRotation turns its fill 0 into a
    # list), so the bilinear result is multiplied by the grid-sampled all-ones mask. angle in degrees.
    n, c, h, w = img.shape
    rot = math.radians(-angle)
    a, b, cc, d = math.cos(rot), -math.sin(rot), math.sin(rot), math.cos(rot)
    theta = torch.tensor([d, -b, 0.0, -cc, a, 0.0], dtype=img.dtype).reshape(1, 2, 3)
    base_grid = torch.empty(1, h, w, 3, dtype=theta.dtype)
    base_grid[..., 0].copy_(torch.linspace(-w * 0.5 + 0.5, w * 0.5 + 0.5 - 1, steps=w))
    base_grid[..., 1].copy_(torch.linspace(-h * 0.5 + 0.5, h * 0.5 + 0.5 - 1, steps=h).unsqueeze_(-1))
    base_grid[..., 2].fill_(1)
    rescaled_theta = theta.transpose(1, 2) / torch.tensor([0.5 * w, 0.5 * h], dtype=theta.dtype)
    grid = base_grid.view(1, h * w, 3).bmm(rescaled_theta).view(1, h, w, 2).expand(n, h, w, 2)
    img = torch.cat((img, torch.ones(n, 1, h, w, dtype=img.dtype)), dim=1)
    img = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    mask = img[:, -1:].expand(n, c, h, w)
    return img[:, :-1] * mask + (1.0 - mask) * 0.0


def ref_ta_bsr_shuffle(x, dims, first, per_strip, angles):
    # TransferAttack input_transformation/bsr.py, BSR.shuffle with shuffle_single_dim / image_rotation:
    # dims in random order; cut along dims[0] (lengths, order after random.shuffle); each STRIP rotated by
    # T.RandomRotation((-24, 24), BILINEAR) (one angle for the whole batch), then cut along dims[1] and
    # shuffled with its own lengths and order. first = (lengths, order); per_strip[k] = (lengths, order).
    lengths, order = first
    x_strips = [torch.split(x, list(lengths), dim=dims[0])[i] for i in order]
    out = []
    for strip, (ls, o), angle in zip(x_strips, per_strip, angles):
        pieces = torch.split(ref_tv_rotate(strip, angle), list(ls), dim=dims[1])
        out.append(torch.cat([pieces[i] for i in o], dim=dims[1]))
    return torch.cat(out, dim=dims[0])


def test_bsr_rotation_conventions():
    """Ours rotates by theta what tfa and torchvision rotate by -theta (U[-tau, tau] is symmetric, so
    the distribution is the same); torchvision's fill additionally scales the border pixels by the
    sampled coverage, which tfa and ours do not."""
    block = torch.rand(2, 3, 9, 12, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    for degrees in (-24.0, -7.5, 13.0):
        phi = math.radians(degrees)
        ours = rotate(block, phi)
        assert max_diff(ours, ref_tfa_rotate(block, torch.full((2,), -phi, dtype=torch.float64))) < TOL
        mask = rotate(torch.ones_like(block), phi)  # the sampled coverage (ours is the plain bilinear sample)
        assert max_diff(ours * mask, ref_tv_rotate(block, -degrees)) < TOL
        partial = (mask > 1e-3) & (mask < 1 - 1e-3)
        assert partial.any() and max_diff(ours[partial], ref_tv_rotate(block, -degrees)[partial]) > 1e-3


def test_bsr_shuffle_is_transferattacks_without_rotation_and_differs_with_it(script):
    """TransferAttack's shuffle matches ours block for block at angle 0 (rows first, independent cuts
    and order per strip); with an angle it rotates whole strips before cutting them, ours each block."""
    x = torch.rand(1, 3, 12, 16, generator=torch.Generator().manual_seed(13))
    first = ((5, 7), [1, 0])
    per_strip = [((6, 10), [1, 0]), ((9, 7), [0, 1])]  # output strip k = original strip first[1][k]
    cut = lambda lengths, size: [(lengths[0] - 1 + 0.5) / (size - 1)]  # noqa: E731
    keys = lambda order: [(order.index(i) + 0.5) / 2 for i in range(2)]  # noqa: E731
    draws = cut(first[0], 12) + keys(first[1])
    for lengths, order in per_strip:
        draws += cut(lengths, 16) + keys(order) + [0.5, 0.5]  # angle (2 * 0.5 - 1) tau = 0
    script.add("host", [draws])
    ((shuffled,), _, _) = BlockShuffleRotation(BSRSettings(bsr_blocks=2, bsr_copies=1))(x, rng_of(x))[0]
    script.finished()
    assert max_diff(shuffled, ref_ta_bsr_shuffle(x, [2, 3], first, per_strip, [0.0, 0.0])) < TOL
    assert max_diff(shuffled, ref_ta_bsr_shuffle(x, [2, 3], first, per_strip, [10.0, -10.0])) > 0.05


def test_bsr_logits_are_mapped_back_to_the_labels(script):
    """On purpose: a copy's logits are moved and rotated back onto the label grid, and the pixels a
    rotation cut off carry no loss; the references compare the shuffled image's class logits with
    image-level labels, which for segmentation would pair pixels with another place's labels."""
    x = torch.rand(1, 3, 14, 18, generator=torch.Generator().manual_seed(14))
    x = F.avg_pool2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), 5, stride=1)  # smooth, so rotations keep values
    layout = bsr_layout(torch.Generator().manual_seed(15), 1, 14, 18)
    script.add("host", our_bsr_draws(layout, 14, 18, math.radians(24.0), 1))
    ((shuffled,), back, coverage) = BlockShuffleRotation(BSRSettings(bsr_blocks=2, bsr_copies=1))(x, rng_of(x))[0]
    script.finished()
    restored = back([shuffled])  # an identity "model"
    assert not coverage.all() and coverage.float().mean() > 0.6
    on = coverage[:, None].expand_as(x)
    assert (restored - x).abs()[on].mean() < 0.5 * (shuffled - x).abs()[on].mean()
