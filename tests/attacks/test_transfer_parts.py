"""Oracle and reference tests of the parts added for issue 13: TsallisPGD, DAG, SEA/APGD, FSPGD, the
target maps, the radius stages and worst case, and the DS, BSR, SI, Admix, SSA and VT transforms.

Every expected value here is computed from the papers' definitions, written out independently of
the library (sums over classes, explicit loops), not copied from its output.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from benchmark.attacks import (
    AdmixSettings,
    BSRSettings,
    DSSettings,
    SISettings,
    SSASettings,
    VTSettings,
    build_attack,
)
from benchmark.attacks.bases.dag import dag_loss
from benchmark.attacks.bases.fspgd import fspgd_loss, similar_pairs
from benchmark.attacks.bases.tsallispgd import q_at, tsallis_loss, tsallis_pixel_loss
from benchmark.attacks.features import capture, feature_extractor
from benchmark.attacks.losses.ce import ce_loss, targeted_ce_loss
from benchmark.attacks.losses.sea import class_balance_weights, js_to_onehot, sea_loss
from benchmark.attacks.modifiers.admix import Admix
from benchmark.attacks.modifiers.bsr import BlockShuffleRotation
from benchmark.attacks.modifiers.ds import DynamicScaling
from benchmark.attacks.modifiers.si import ScaleInvariance
from benchmark.attacks.modifiers.ssa import SpectrumSimulation, dct_matrix
from benchmark.attacks.modifiers.vt import VarianceTuning
from benchmark.attacks.parts import LossContext, Probe
from benchmark.attacks.rng import PerImageRNG
from benchmark.attacks.rules.apgd import APGDStep
from benchmark.attacks.runners import stage_steps
from benchmark.attacks.targets import target_map

from .conftest import PixelLinear, TinySegNet, gens

EPS = 8 / 255


def rng(n=2, seed=0):
    return PerImageRNG(gens(n, seed), n, torch.device("cpu"))


def logits_case(seed=0, n=2, k=4, h=5, w=6):
    gen = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(n, k, h, w, generator=gen)
    labels = torch.randint(0, k, (n, h, w), generator=gen)
    labels[0, 0, :2] = 255
    return logits, labels, labels != 255


def ctx(valid, step=0, steps=10, targets=None):
    return LossContext(step=step, steps=steps, valid=valid, targets=targets)


def p_true(logits, labels, valid):
    safe = torch.where(valid, labels, 0)
    return logits.softmax(1).gather(1, safe.unsqueeze(1)).squeeze(1)


# ---------------------------------------------------------------- TsallisPGD


def test_tsallis_q1_is_ce_and_other_q_match_the_definition():
    logits, labels, valid = logits_case()
    assert torch.allclose(tsallis_pixel_loss(logits, labels, valid, 1.0), ce_loss(logits, labels, ctx(valid)), atol=1e-6)
    p = p_true(logits, labels, valid)
    for q in (-2.0, 0.0, 0.5, 2.0):
        expected = torch.where(valid, (1 - p ** (1 - q)) / (1 - q), 0.0)
        assert torch.allclose(tsallis_pixel_loss(logits, labels, valid, q), expected, atol=1e-5), q
    # q = 0: the loss is 1 - p_y, bounded, unlike CE
    assert torch.allclose(tsallis_pixel_loss(logits, labels, valid, 0.0), torch.where(valid, 1 - p, 0.0), atol=1e-6)


def test_q_schedules_endpoints_and_midpoints():
    # u = t / T (the authors' progress = step / iterations): q_end is reached at t = T, after the last step
    for schedule in ("linear", "cosine"):
        assert q_at(0, 10, -2.0, 1.0, schedule) == pytest.approx(-2.0)
        assert q_at(5, 10, -2.0, 1.0, schedule) == pytest.approx(-0.5)
        assert q_at(10, 10, -2.0, 1.0, schedule) == pytest.approx(1.0)
    assert q_at(9, 10, -2.0, 1.0, "linear") == pytest.approx(-2.0 + 3 * 0.9)
    assert q_at(2, 10, -2.0, 1.0, "linear") == pytest.approx(-2.0 + 3 * 0.2)
    assert q_at(2, 10, -2.0, 1.0, "cosine") == pytest.approx(1.0 - 3 * (1 + math.cos(0.2 * math.pi)) / 2)
    assert all(q_at(t, 11, -2.0, 1.0, "constant") == -2.0 for t in range(11))
    logits, labels, valid = logits_case()
    at_end = tsallis_loss(logits, labels, ctx(valid, step=10, steps=10), q_start=-2.0, q_end=1.0, q_schedule="linear")
    assert torch.allclose(at_end, ce_loss(logits, labels, ctx(valid)), atol=1e-6)


# ---------------------------------------------------------------- SEA losses


def test_js_closed_form_equals_the_definition():
    logits, labels, valid = logits_case(k=5)
    p = logits.softmax(1)
    onehot = F.one_hot(torch.where(valid, labels, 0), 5).permute(0, 3, 1, 2).float()
    m = (p + onehot) / 2

    def kl(a, b):  # sum_k a_k log(a_k / b_k), 0 log 0 = 0
        return torch.where(a > 0, a * (a.clamp(min=1e-30).log() - b.clamp(min=1e-30).log()), 0.0).sum(1)

    expected = torch.where(valid, 0.5 * kl(p, m) + 0.5 * kl(onehot, m), 0.0)
    assert torch.allclose(sea_loss(logits, labels, ctx(valid), loss="js"), expected, atol=1e-5)
    # limits: p_y = 1 gives 0, p_y = 0 gives log 2, and nothing is NaN at exactly 0
    values = js_to_onehot(torch.log(torch.tensor([1.0, 0.0, 0.5])))
    assert torch.allclose(values[:2], torch.tensor([0.0, math.log(2)]), atol=1e-6) and not values.isnan().any()


def test_balanced_weights_by_counting():
    labels = torch.tensor([[[0, 0, 0, 1], [1, 2, 255, 255]]])
    valid = labels != 255
    weights = class_balance_weights(labels, valid, 3)
    # 6 valid pixels: class 0 has 3, class 1 has 2, class 2 has 1
    expected = torch.tensor([[[1 - 3 / 6, 1 - 3 / 6, 1 - 3 / 6, 1 - 2 / 6], [1 - 2 / 6, 1 - 1 / 6, 0, 0]]])
    assert torch.allclose(weights, expected)


def test_masked_losses_drop_fooled_pixels_and_mask_norm_is_the_normalised_logit():
    logits, labels, valid = logits_case()
    correct = valid & (logits.argmax(1) == labels)
    assert 0 < correct.sum() < valid.sum()
    ce = ce_loss(logits, labels, ctx(valid))
    assert torch.allclose(sea_loss(logits, labels, ctx(valid), loss="masked_ce"), torch.where(correct, ce, 0.0))
    weights = class_balance_weights(labels, valid, 4)
    assert torch.allclose(sea_loss(logits, labels, ctx(valid), loss="balanced_masked_ce"),
                          torch.where(correct, weights * ce, 0.0))
    mask_norm = sea_loss(logits, labels, ctx(valid), loss="mask_norm")
    for n, i, j in torch.nonzero(valid).tolist():
        z = logits[n, :, i, j]
        expected = -z[labels[n, i, j]] / z.norm() if correct[n, i, j] else 0.0
        assert mask_norm[n, i, j].item() == pytest.approx(float(expected), abs=1e-6)


# ---------------------------------------------------------------- targets and DAG


@pytest.mark.parametrize("k", [2, 3, 7])
def test_permutation_targets_are_a_k_cycle_per_image(k):
    labels = torch.arange(k).repeat(3, 4, 1)  # every class present in every image
    labels[:, 0, 0] = 255
    valid = labels != 255
    targets = target_map(labels, valid, k, "permutation", 0, rng(3), 255)
    assert (targets[~valid] == 255).all() and (targets[valid] != labels[valid]).all()  # no fixed point
    for n in range(3):
        perm = {int(a): int(b) for a, b in zip(labels[n][valid[n]], targets[n][valid[n]])}
        assert sorted(perm.values()) == list(range(k))  # a bijection
        cycle, c = [0], perm[0]
        while c != 0:
            cycle.append(c)
            c = perm[c]
        assert len(cycle) == k  # one cycle through all classes
    again = target_map(labels, valid, k, "permutation", 0, rng(3), 255)
    assert torch.equal(targets, again)  # from the image's generator


def test_class_targets_and_their_range():
    labels = torch.zeros(1, 2, 2, dtype=torch.long)
    labels[0, 0, 0] = 255
    valid = labels != 255
    out = target_map(labels, valid, 4, "class", 3, rng(1), 255)
    assert out.tolist() == [[[255, 3], [3, 3]]]
    with pytest.raises(ValueError, match="target_class=4"):
        target_map(labels, valid, 4, "class", 4, rng(1), 255)


def test_dag_loss_is_the_logit_difference_on_the_active_set():
    logits, labels, valid = logits_case()
    targets = torch.where(valid, (labels + 1) % 4, 255)
    out = dag_loss(logits, labels, ctx(valid, targets=targets), active_set="correct")
    not_target = dag_loss(logits, labels, ctx(valid, targets=targets), active_set="not_target")
    for n, i, j in torch.nonzero(valid).tolist():
        z, y, t = logits[n, :, i, j], labels[n, i, j], targets[n, i, j]
        c = y if z[y] >= z.max() else z.argmax()  # the current prediction (a tied label counts)
        assert out[n, i, j].item() == pytest.approx((z[t] - z[y]).item() if z.argmax() == y else 0.0, abs=1e-6)
        assert not_target[n, i, j].item() == pytest.approx((z[t] - z[c]).item() if z.argmax() != t else 0.0,
                                                            abs=1e-6)
    assert (out[~valid] == 0).all()


def test_dag_step_is_linf_normalised_and_stops_on_fooled_pixels():
    # two classes, labels 0: the target is class 1; pixels already predicted 1 are inactive
    weight = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    model = PixelLinear(weight).eval()
    images = torch.full((1, 3, 4, 4), 0.5)
    images[0, 1, 0, :] = 0.9  # row 0 already predicted as class 1: inactive from the start
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    adv = build_attack("dag", steps=1, alpha=1 / 255, eps=EPS)(model, images, labels, generator=gens(1))
    delta = adv - images
    assert torch.equal(delta[0, :, 0], torch.zeros(3, 4))
    # on the active pixels the gradient is (-1, +1, 0): max |g| = 1, so the step is alpha * g
    assert torch.allclose(delta[0, 0, 1:], torch.full((3, 4), -1 / 255), atol=1e-6)
    assert torch.allclose(delta[0, 1, 1:], torch.full((3, 4), 1 / 255), atol=1e-6)
    assert torch.equal(delta[0, 2], torch.zeros(4, 4))


# ---------------------------------------------------------------- APGD and SEA


def test_apgd_checkpoints_halve_eta_on_oscillation_and_restart_from_the_best():
    rule = APGDStep(steps=50)
    assert (rule.first_period, rule.decrement, rule.min_period) == (11, 1, 3)
    x0 = torch.zeros(2, 1, 1, 1)
    state = rule.init(x0, eps=1.0)
    box = (torch.full_like(x0, -10.0), torch.full_like(x0, 10.0))
    direction = torch.ones_like(x0)
    x = x0
    # image 0 improves every step (no halving); image 1 improves once then falls (halved). The first
    # checkpoint comes after first_period steps: before the step from x^first_period
    for t in range(rule.first_period + 1):
        values = torch.tensor([float(t), 5.0 if t == 0 else -float(t)])
        x_best_before = state.x_best.clone()
        x, state = rule.step(x, direction, values, None, *box, state, t)
    assert state.eta.flatten().tolist() == [2.0, 1.0]
    assert state.period == rule.first_period - rule.decrement
    # image 1 restarted from its best point (the iterate of step 0, x0) before this last step
    assert torch.equal(x_best_before[1], x0[1])


def test_stage_steps_and_progressive_radius_stay_in_the_final_budget():
    assert stage_steps(20) == [6, 6, 8] and stage_steps(3) == [0, 0, 3] and stage_steps(10) == [3, 3, 4]
    model = TinySegNet().eval()
    images, labels = torch.rand(2, 3, 9, 11), torch.randint(0, 4, (2, 9, 11))
    adv = build_attack("sea", steps=10, eps=EPS)(model, images, labels, generator=gens(2))
    assert (adv - images).abs().max() <= EPS + 1e-6


def test_sea_is_the_per_image_worst_case_of_its_members():
    model = TinySegNet().eval()
    images, labels = torch.rand(3, 3, 9, 11), torch.randint(0, 4, (3, 9, 11))

    def accuracy(adv):
        return (model(adv).argmax(1) == labels).float().flatten(1).mean(1)

    members = ["masked_ce", "balanced_ce", "js", "mask_norm"]
    outs = [build_attack("apgd", loss=m, steps=8, eps=EPS, radius_schedule="progressive")(
        model, images, labels, generator=gens(3)) for m in members]
    sea = build_attack("sea", steps=8, eps=EPS)(model, images, labels, generator=gens(3))
    accs = torch.stack([accuracy(o) for o in outs])  # (members, N)
    assert torch.allclose(accuracy(sea), accs.min(0).values)


# ---------------------------------------------------------------- FSPGD


def test_fspgd_loss_terms_by_hand():
    gen = torch.Generator().manual_seed(3)
    clean = torch.randn(1, 4, 2, 3, generator=gen)
    adv = torch.randn(1, 4, 2, 3, generator=gen)
    c = 3.0
    f, a = clean.flatten(2)[0].T, adv.flatten(2)[0].T  # (P, C)
    P = f.shape[0]
    local = sum(F.cosine_similarity(f[i], a[i], dim=0) for i in range(P)) / P
    pairs = [(i, j) for i in range(P) for j in range(P)
             if i != j and F.cosine_similarity(f[i], f[j], dim=0) > math.cos(math.pi / c)]
    assert pairs, "the case must have similar pairs"
    context = sum(a[i] @ a[j] for i, j in pairs) / (2 * len(pairs))
    assert int(similar_pairs(clean, c).sum()) == len(pairs)
    for step in (0, 4, 9):
        lam = step / 10
        value = fspgd_loss(adv, clean, ctx(None, step=step, steps=10), c=c)
        assert value.item() == pytest.approx(float(-lam * local - (1 - lam) * context), abs=1e-5)
    # equal features: the local cosine is 1
    at_clean = fspgd_loss(clean, clean, ctx(None, step=10, steps=10), c=c)
    assert at_clean.item() == pytest.approx(-1.0, abs=1e-6)


def test_feature_capture_stops_early_and_selects_sequence_elements():
    model = TinySegNet().eval()
    calls = []
    model.conv2.register_forward_hook(lambda *a: calls.append("conv2"))
    x = torch.rand(1, 3, 5, 5, requires_grad=True)
    out = capture(model, ["conv1"], lambda: model(x))["conv1"]
    assert calls == [] and torch.allclose(out, model.conv1(x))
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert grad.abs().sum() > 0

    class Pair(torch.nn.Module):
        def forward(self, x):
            return x + 1, x * 2

    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = Pair()

        def forward(self, x):
            return self.backbone(x)[0]

    w = Wrapper()
    assert torch.equal(feature_extractor(w, "backbone[1]")(x), x * 2)
    with pytest.raises(ValueError, match="no such submodule"):
        feature_extractor(w, "neck")


def test_fspgd_ignores_labels_and_lowers_feature_similarity():
    model = TinySegNet().eval()
    images = torch.rand(2, 3, 9, 11)
    labels = torch.randint(0, 4, (2, 9, 11))
    attack = build_attack("fspgd", steps=10, eps=EPS)
    adv = attack(model, images, labels, generator=gens(2))
    assert torch.equal(adv, attack(model, images, torch.full_like(labels, 255), generator=gens(2)))
    signs = torch.randint(0, 2, images.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    noise = (images + EPS * signs).clamp(0, 1)

    def objective(x, step):
        return fspgd_loss(model.conv1(x), model.conv1(images), ctx(None, step=step, steps=10)).detach()

    # the objective of every step is higher than at a random corner of the same budget, and than clean
    for step in (0, 5, 9):
        assert (objective(adv, step) > objective(noise, step)).all()
        assert (objective(adv, step) > objective(images, step)).all()


# ---------------------------------------------------------------- targeted


def test_targeted_towards_the_label_descends_and_towards_the_other_class_ascends():
    weight = torch.tensor([[0.8, -0.5, 0.3], [-0.4, 0.7, -0.9]])
    model = PixelLinear(weight).eval()
    images = torch.rand(1, 3, 6, 7, generator=torch.Generator().manual_seed(1)) * 0.5 + 0.25
    labels = torch.zeros(1, 6, 7, dtype=torch.long)
    up = torch.sign(weight[1] - weight[0])[None, :, None, None]  # direction that raises class 1
    for target, direction in ((0, -up), (1, up)):
        attack = build_attack("pgd+targeted", target_rule="class", target_class=target, alpha=EPS, steps=4,
                              random_start=False)
        adv = attack(model, images, labels, generator=gens(1))
        assert torch.allclose(adv, images + EPS * direction, atol=1e-6), target
    logits, labels, valid = logits_case()
    targets = torch.where(valid, (labels + 1) % 4, 255)
    assert torch.allclose(targeted_ce_loss(logits, labels, ctx(valid, targets=targets)),
                          -ce_loss(logits, targets, ctx(valid)))


# ---------------------------------------------------------------- geometry transforms


def smooth(n=2, h=24, w=32):
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    img = torch.stack([yy, xx, (yy + xx) / 2])
    return torch.stack([img + 0.1 * i for i in range(n)])


def test_ds_sizes_within_range_and_back_realigns_logits():
    x = smooth(3)
    ds = DynamicScaling(DSSettings(scale_min=0.5, scale_max=1.5))
    for seed in range(4):
        ((inputs, back, coverage),) = ds(x, rng(3, seed))
        assert coverage is None and sum(inp.shape[0] for inp in inputs) == 3
        for inp in inputs:
            assert 12 <= inp.shape[-2] <= 36 and 16 <= inp.shape[-1] <= 48
        restored = back([inp.clone() for inp in inputs])  # identity "model"
        assert restored.shape == x.shape
        assert (restored - x).abs().max() < 0.05
        # batch order is kept: each image keeps its own offset
        assert torch.allclose(restored.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=0.01)
    ((inputs, back, _),) = DynamicScaling(DSSettings(scale_prob=0.0))(x, rng(3))
    assert len(inputs) == 1 and inputs[0] is x and torch.equal(back([x]), x)


def test_bsr_back_realigns_logits_on_its_coverage():
    x = smooth(2, 30, 40)
    for seed in range(3):
        views = BlockShuffleRotation(BSRSettings(bsr_blocks=3, bsr_copies=2, bsr_angle=24.0))(x, rng(2, seed))
        assert len(views) == 2
        for inputs, back, coverage in views:
            assert inputs[0].shape == x.shape
            assert not torch.allclose(inputs[0], x)  # shuffled
            restored = back([inputs[0].clone()])
            assert coverage.float().mean() > 0.6
            err = (restored - x).abs().amax(1)[coverage]
            assert err.mean() < 0.02, err.mean()
    ((inputs, back, coverage),) = BlockShuffleRotation(BSRSettings(bsr_blocks=1, bsr_copies=1, bsr_angle=0.0))(x, rng(2))
    assert torch.allclose(inputs[0], x, atol=1e-6) and coverage.all()


# ---------------------------------------------------------------- pixel transforms


def test_si_copies_are_halvings_with_equal_weights():
    x = torch.rand(2, 3, 4, 5)
    copies = ScaleInvariance(SISettings(scale_copies=4))(x, rng())
    assert [w for _, w in copies] == [0.25] * 4
    for i, (c, _) in enumerate(copies):
        assert torch.equal(c, x / 2**i)


def test_admix_copies_mix_a_rolled_image_of_the_same_picture():
    x = torch.rand(2, 3, 6, 7)
    copies = Admix(AdmixSettings(admix_copies=2, admix_mixes=3, admix_strength=0.2))(x, rng())
    assert len(copies) == 6 and sum(w for _, w in copies) == pytest.approx(1.0)
    for c, _ in copies:
        for gamma in (1.0, 0.5):
            partner = c / gamma - x  # = eta * x' for the right gamma
            found = any(torch.allclose(partner[i], 0.2 * torch.roll(x[i], (dy, dx), (1, 2)), atol=1e-5)
                        for i in [0] for dy in range(6) for dx in range(7))
            if found:
                break
        assert found


def test_ssa_without_noise_and_mask_is_the_identity_and_dct_is_orthonormal():
    for n in (1, 5, 8):
        d = dct_matrix(n, dtype=torch.float64)
        assert torch.allclose(d @ d.T, torch.eye(n, dtype=torch.float64), atol=1e-12)
    d = dct_matrix(4, dtype=torch.float64)  # DCT-II of a constant is only the DC term
    assert torch.allclose(d @ torch.ones(4, dtype=torch.float64), torch.tensor([2.0, 0, 0, 0], dtype=torch.float64))
    x = torch.rand(2, 3, 7, 9)
    from benchmark.attacks import IterativeSettings

    copies = SpectrumSimulation(SSASettings(ssa_copies=3, ssa_rho=0.0, ssa_sigma=0.0), IterativeSettings())(x, rng())
    assert len(copies) == 3 and all(torch.allclose(c, x, atol=1e-5) for c, _ in copies)
    noisy = SpectrumSimulation(SSASettings(ssa_copies=2), IterativeSettings(eps=EPS))(x, rng())
    assert all(0 < (c - x).abs().mean() < 0.2 for c, _ in noisy)


def test_vt_probes_its_neighbours_and_is_plain_for_a_constant_gradient():
    vt = VarianceTuning(VTSettings(vt_samples=5, vt_beta=1.5), None)
    point = torch.full((2, 1, 3, 3), 0.5)
    probed = []

    def gradient(points):
        probed.append(points)
        return torch.full_like(points, 2.0)

    probe = Probe(point, EPS, rng(), gradient)
    grad = torch.full_like(point, 2.0)
    state = vt.init(point)
    out, state = vt(grad, state, probe)
    assert len(probed) == 5 and torch.equal(out, grad) and torch.allclose(state, torch.zeros_like(state))
    for p in probed:
        assert (p - point).abs().max() <= 1.5 * EPS + 1e-7 and (p != point).any()
    # the next step adds the previous variance term v = mean neighbour gradient - g
    state = torch.ones_like(point)
    out, _ = vt(grad, state, probe)
    assert torch.equal(out, grad + 1)
