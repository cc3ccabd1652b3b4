"""Reference tests: SEA/APGD, DAG, FSPGD and TsallisPGD against their authors' code.

Each ``ref_*`` function below RE-STATES one function of the authors' public code in plain torch,
written from reading it (same maths, same order of operations, same indexing quirks), and names the
repository, commit, file and function it restates. Both sides get identical inputs and identical
random draws; where the computation is the same the results agree to ~1e-6 (float32). Where we differ
on purpose, a test PINS the difference: it asserts that the two disagree and how.

References read (``git show <commit>:<path>``):
    AA   fra31/auto-attack @ a392200 autoattack/autopgd_base.py (APGDAttack)
    SEA  nmndeep/Robust-Segmentation @ f8ff8e6 semseg/attacker.py, tools/infer.py, tools/worse_only.py
         (ECCV release); @ 1fcc26b semseg/utils/attacker.py (arXiv-v1 code: single_logits_loss);
         @ 6d4136c semseg/utils/attacker.py (cls_balanced_loss)
    DAG  cihangxie/DAG @ 55505e2 code/fooling_seg_net.m, code/forward_and_back_propogation_seg.m,
         code/generate_mapping.m (Matlab/Caffe; restated in torch)
    FS   KU-AIVS/FSPGD @ 76aa722 fspgd/attacks.py (Attack.fspgd, step_inf, init_linf),
         implementation/model/utils/trainer.py (Trainer.adv_attack)
    TS   aam-at/tsallis_pgd @ f8bdbe5 packages/segmentation_attacks/src/segmentation_attacks/
         utils/losses/tsallis.py (tsallis_ce, adaptive_tsallis_ce_loss), base.py (perturb_single)
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from benchmark.attacks import build_attack
from benchmark.attacks.bases.dag import dag_loss
from benchmark.attacks.bases.fspgd import fspgd_loss
from benchmark.attacks.bases.tsallispgd import (
    q_at,
    targeted_tsallis_loss,
    tsallis_pixel_loss,
)
from benchmark.attacks.core import _keep_best, per_image_objective
from benchmark.attacks.losses.sea import class_balance_weights, sea_loss
from benchmark.attacks.parts import LossContext
from benchmark.attacks.rng import PerImageRNG
from benchmark.attacks.rules.apgd import APGDStep
from benchmark.attacks.rules.normalised import linf_normalise
from benchmark.attacks.runners import STAGE_RADII, stage_steps
from benchmark.attacks.targets import target_map

from .conftest import PixelLinear, TinySegNet, gens

EPS = 8 / 255
TOL = 1e-6


def ctx(valid, step=0, steps=10, targets=None):
    return LossContext(step=step, steps=steps, valid=valid, targets=targets)


def to_ref_labels(labels):
    """The SEA code supports only ignore_index = -1 (assert in apgd_train): 255 -> -1."""
    return torch.where(labels == 255, -1, labels)


def draws(n, shape, seed=0, count=1):
    """The per-image U[0, 1) draws our core makes from ``gens(n, seed)``, in order."""
    g = [torch.Generator().manual_seed(seed + i) for i in range(n)]
    return [torch.stack([torch.rand(shape, generator=gi) for gi in g]) for _ in range(count)]


# =========================================================================== reference re-statements
# ---- SEA losses: nmndeep/Robust-Segmentation @ f8ff8e6, semseg/attacker.py


def ref_masked_cross_entropy(pred, target, ignore_index=-1):
    # semseg/attacker.py: masked_cross_entropy (reduction="none")
    mask = pred.max(1)[1] == target
    mask = (target != ignore_index) * mask
    loss = F.cross_entropy(pred, target, reduction="none", ignore_index=-1)
    return mask.float().detach() * loss


def ref_masked_cross_entropy_balanced(pred, target, weights, ignore_index=-1):
    # semseg/attacker.py: masked_cross_entropy_balanced (weights: a fixed per-class vector)
    mask = pred.max(1)[1] == target
    mask = (target != ignore_index) * mask
    loss = F.cross_entropy(pred, target, reduction="none", ignore_index=-1, weight=weights)
    return mask.float().detach() * loss


def ref_js_loss(p, q, ignore_index=-1):
    # semseg/attacker.py: js_div_fn(p, q, red_dim=1) via js_loss(reduction="none")
    p = F.softmax(p, 1)
    mask_background = (q != ignore_index).long()
    q = mask_background * q
    q = F.one_hot(q.view(q.shape[0], -1), p.shape[1])
    q = q.permute(0, 2, 1).view(p.shape).float()
    m = (p + q) / 2
    loss = (F.kl_div(m.log(), p, reduction="none") + F.kl_div(m.log(), q, reduction="none")) / 2
    loss = mask_background.unsqueeze(1) * loss
    return loss.sum(dim=1)


def ref_single_logits_loss(pred, target, ignore_index=-1):
    # @1fcc26b semseg/utils/attacker.py: single_logits_loss(normalized=True, masked=True), the
    # "mask-norm-corrlog-avg" loss (the paper's masked spherical loss)
    pred = pred / (pred ** 2).sum(1, keepdim=True).sqrt()
    sh, n_cls = target.shape, pred.shape[1]
    mask_background = (target != ignore_index).long()
    y = target * mask_background
    y = F.one_hot(y.view(sh[0], -1), n_cls).permute(0, 2, 1).view(pred.shape)
    loss = -1 * (y * pred).sum(1)
    loss = loss * mask_background
    mask = pred.max(1)[1] == target
    return mask.float().detach() * loss


def ref_cls_balanced_ce(pred, target):
    # @6d4136c semseg/utils/attacker.py: cls_balanced_loss(loss_fn="ce")
    n_pxl = target.shape[-2] * target.shape[-1]
    loss = F.cross_entropy(pred, target, reduction="none", ignore_index=-1)
    mask = torch.zeros_like(target).float()
    for cl in range(pred.shape[1]):
        in_class = target == cl
        mask += in_class.float().sum(dim=(-2, -1)).view(-1, 1, 1) * in_class.float()
    mask /= n_pxl
    return (1 - mask) * loss


def ref_pixel_to_img_loss(loss, mask_background):
    # semseg/attacker.py: pixel_to_img_loss
    return (mask_background * loss).view(loss.shape[0], -1).mean(-1)


REF_CRITERIA = {
    "ce": lambda z, y: F.cross_entropy(z, y, reduction="none", ignore_index=-1),  # "ce-avg"
    "masked_ce": ref_masked_cross_entropy,  # "mask-ce-avg"
    "js": ref_js_loss,  # "js-avg"
}


# ---- APGD: fra31/auto-attack @ a392200 autoattack/autopgd_base.py (APGDAttack) and its segmentation
# copy nmndeep/Robust-Segmentation @ f8ff8e6 semseg/attacker.py (apgd_train, Linf branch: the same loop)


def ref_check_oscillation(x, j, k, k3=0.75):
    # APGDAttack.check_oscillation / attacker.check_oscillation; x[j - counter5 - 1] may be x[-1]
    t = torch.zeros(x.shape[1])
    for counter5 in range(k):
        t += (x[j - counter5] > x[j - counter5 - 1]).float()
    return (t <= k * k3 * torch.ones_like(t)).float()


def ref_apgd_train(oracle, x, eps, n_iter, labels=None, x_init=None, t_rand=None, wraparound=True):
    """semseg/attacker.py apgd_train (norm "Linf", early_stop=False).

    ``oracle(x_adv, e)`` -> (gradient of the attack loss, per-image track-loss values, logits or None)
    for the e-th evaluation. ``t_rand`` = 2 * rand - 1 (the random start draw). ``wraparound=False``
    replaces the unfilled row loss_steps[-1] of the first check by f(x_0) (the paper's comparison).
    Returns x_best, x_best_adv and a trace (step sizes used, iterates before restarts, checks).
    """
    bs = x.shape[0]
    x_adv = x.clone() if t_rand is None else (x.clone() + eps * t_rand).clamp(0.0, 1.0)
    if x_init is not None:
        x_adv = x_init.clone()
    x_adv = x_adv.clamp(0.0, 1.0)
    x_best, x_best_adv = x_adv.clone(), x_adv.clone()
    loss_steps = torch.zeros([n_iter, bs])
    n_iter_2, n_iter_min, size_decr = max(int(0.22 * n_iter), 1), max(int(0.06 * n_iter), 1), max(int(0.03 * n_iter), 1)
    k, thr_decr, alpha = n_iter_2 + 0, 0.75, 2.0
    step_size = alpha * eps * torch.ones([bs, 1, 1, 1])
    counter3 = 0
    grad, loss_indiv, logits = oracle(x_adv, 0)
    grad_best = grad.clone()
    if logits is not None:
        acc = (logits.max(1)[1] == labels).float().view(bs, -1).mean(-1)  # ignored pixels count as wrong
    loss_best = loss_indiv.clone()
    f0 = loss_indiv.clone()
    loss_best_last_check = loss_best.clone()
    reduced_last_check = torch.ones_like(loss_best)
    x_adv_old = x_adv.clone()
    trace = {"step_size": [], "x": [], "checks": []}
    for i in range(n_iter):
        grad2 = x_adv - x_adv_old
        x_adv_old = x_adv.clone()
        a = 0.75 if i > 0 else 1.0
        trace["step_size"].append(step_size.flatten().clone())
        x_adv_1 = x_adv + step_size * torch.sign(grad)
        x_adv_1 = torch.clamp(torch.min(torch.max(x_adv_1, x - eps), x + eps), 0.0, 1.0)
        x_adv_1 = torch.clamp(torch.min(torch.max(x_adv + (x_adv_1 - x_adv) * a + grad2 * (1 - a), x - eps),
                                        x + eps), 0.0, 1.0)
        x_adv = x_adv_1 + 0.0
        trace["x"].append(x_adv.clone())
        grad_new, loss_indiv, logits = oracle(x_adv, i + 1)
        if i < n_iter - 1:  # "save one backward pass"
            grad = grad_new
        if logits is not None:
            pred = logits.max(1)[1] == labels
            pred[labels == -1] = True
            avg_acc = pred.float().view(bs, -1).mean(-1)
            ind_pred = avg_acc <= acc
            acc = torch.min(acc, avg_acc)
            x_best_adv[ind_pred] = x_adv[ind_pred] + 0.0
        y1 = loss_indiv.clone()
        loss_steps[i] = y1 + 0
        ind = y1 > loss_best
        x_best[ind] = x_adv[ind].clone()
        grad_best[ind] = grad[ind].clone()
        loss_best[ind] = y1[ind] + 0
        counter3 += 1
        if counter3 == k:
            series = loss_steps if wraparound else torch.cat([loss_steps, f0[None]])  # row -1 = f(x_0)
            fl_oscillation = ref_check_oscillation(series, i, k, k3=thr_decr)
            fl_reduce_no_impr = (1.0 - reduced_last_check) * (loss_best_last_check >= loss_best).float()
            fl_oscillation = torch.max(fl_oscillation, fl_reduce_no_impr)
            reduced_last_check = fl_oscillation.clone()
            loss_best_last_check = loss_best.clone()
            trace["checks"].append((i, fl_oscillation.clone()))
            if fl_oscillation.sum() > 0:
                ind_fl_osc = fl_oscillation > 0
                step_size[ind_fl_osc] /= 2.0
                x_adv[ind_fl_osc] = x_best[ind_fl_osc].clone()
                grad[ind_fl_osc] = grad_best[ind_fl_osc].clone()
            counter3 = 0
            k = max(k - size_decr, n_iter_min)
    return x_best, x_best_adv, trace


def ref_apgd_largereps(run_stage, x, eps, n_iter):
    # semseg/attacker.py: apgd_largereps (the radius schedule 2 eps -> 1.5 eps -> eps)
    n_iters = [int(c * n_iter) for c in [0.3, 0.3]]
    n_iters.append(n_iter - sum(n_iters))
    epss = [c * eps for c in [2, 1.5, 1]]
    x_init = None
    for inner_it, inner_eps in zip(n_iters, epss):
        if x_init is not None:  # _project
            x_init = (x + (x_init - x).clamp(-inner_eps, inner_eps)).clamp(0.0, 1.0)
        x_init = run_stage(inner_it, inner_eps, x_init)
    return x_init


def ref_worst_case_index(accs):
    # tools/worse_only.py evalSEA.worse_case_eval: final_acc.min(0) over losses, per image
    return accs.min(0)[1]


def model_oracle(model, labels_ref, attack_loss, track_loss):
    """apgd_train's two loss evaluations: the attack loss for the gradient, the track loss for the
    step-size decisions, both reduced by pixel_to_img_loss."""
    mask_background = 1 - (labels_ref == -1).float()

    def oracle(x_adv, e):
        x_adv = x_adv.detach().requires_grad_()
        logits = model(x_adv)
        loss = ref_pixel_to_img_loss(REF_CRITERIA[attack_loss](logits, labels_ref), mask_background)
        grad = torch.autograd.grad(loss.sum(), [x_adv])[0].detach()
        track = ref_pixel_to_img_loss(REF_CRITERIA[track_loss](logits, labels_ref), mask_background)
        return grad, track.detach(), logits.detach()

    return oracle


# ---- DAG: cihangxie/DAG @ 55505e2 (Matlab + Caffe), restated per image in torch


def ref_dag_forward_backward(model, x, target):
    # code/forward_and_back_propogation_seg.m: pixels not yet at their target; the gradient of their
    # target logits minus the gradient of their currently predicted logits (two backward passes)
    x = x.detach().requires_grad_()
    out = model(x)
    seg_result = out.argmax(1)
    match = seg_result == target
    target_area = int((~match).sum())
    fool = torch.where(~match, out.gather(1, target[:, None])[:, 0], 0.0).sum()
    pred = torch.where(~match, out.gather(1, seg_result[:, None])[:, 0], 0.0).sum()
    res_fool = torch.autograd.grad(fool, x, retain_graph=True)[0]
    res_pred = torch.autograd.grad(pred, x)[0]
    return target_area, res_fool - res_pred


def ref_fooling_seg_net(model, x, target, n_original, step_length, max_iter):
    # code/fooling_seg_net.m: r += dr * step_length / max|dr| while more than 1 % of the original
    # (non-background) pixels remain off target and itr < MAX_ITER; no budget, no box
    r = x * 0
    itr = 0
    pred_target, dr = ref_dag_forward_backward(model, x + r, target)
    while pred_target > 0.01 * n_original and itr < max_iter:
        itr += 1
        r = r + dr * (step_length / dr.abs().max())
        pred_target, dr = ref_dag_forward_backward(model, x + r, target)
    return x + r, itr


def ref_generate_mapping(gt_idx, num_classes, perm):
    # code/generate_mapping.m: targets for the foreground classes present, drawn without replacement
    # from the foreground classes absent from the image (setdiff(1:20, gt_idx); ``perm``: the randperm
    # draw); Matlab stops with "Index exceeds" when fewer candidates than classes present remain
    candidates = [c for c in range(1, num_classes) if c not in gt_idx]
    shuffled = [candidates[i] for i in perm]
    if len(shuffled) < len(gt_idx):
        raise IndexError("Index exceeds the number of array elements")
    return {g: shuffled[j] for j, g in enumerate(gt_idx)}


# ---- FSPGD: KU-AIVS/FSPGD @ 76aa722


def ref_fspgd(mid_original, mid_adv, cosine, iteration, iterations):
    # fspgd/attacks.py: Attack.fspgd (on the CPU; the original calls .cuda())
    lambda_t = iteration / iterations
    n, c, h, w = mid_original.size()
    mid_original = F.normalize(mid_original, dim=1)
    f_orig = torch.reshape(mid_original, (n, c, h * w))
    W = torch.bmm(torch.transpose(f_orig, 1, 2), f_orig)
    W = ((W * (torch.ones((n, h * w, h * w)) - torch.eye(h * w))) > torch.cos(torch.tensor(math.pi / cosine))).float()
    f_adv = torch.reshape(mid_adv, (n, c, h * w))
    f_diag = torch.nn.CosineSimilarity(dim=1, eps=1e-8)(f_orig, f_adv)
    f_combi = (torch.sum(W * torch.bmm(torch.transpose(f_adv, 1, 2), f_adv)) / torch.count_nonzero(W)) / 2
    return -lambda_t * f_diag.mean() - (1 - lambda_t) * f_combi.mean()


def ref_step_inf(perturbed_image, epsilon, data_grad, orig_image, alpha, clamp_min=0.0, clamp_max=1.0):
    # fspgd/attacks.py: Attack.step_inf (one epsilon for every channel: pixel space)
    perturbed_image = perturbed_image.detach() + alpha * data_grad.sign()
    delta = torch.clamp(perturbed_image - orig_image, min=-epsilon, max=epsilon)
    return torch.clamp(orig_image + delta, clamp_min, clamp_max).detach()


def ref_fspgd_attack(model, layer, images, noise, eps, alpha, iterations, cosine):
    # implementation/model/utils/trainer.py: Trainer.adv_attack, attack "fspgd", norm "inf": the hooked
    # feature maps of the clean and the adversarial image are both L2-normalised per position before
    # Attack.fspgd; init_linf adds U[-eps, eps] noise (given here as ``noise``) and clamps to the box
    feats = {}
    handle = getattr(model, layer).register_forward_hook(lambda m, i, o: feats.__setitem__("mid", o))
    orig_image = images.clone()
    with torch.no_grad():
        model(images)
    mid_original = F.normalize(feats["mid"].clone(), dim=1)
    images = torch.clamp(images + noise, 0.0, 1.0)
    images.requires_grad = True
    model(images)
    mid_adv = F.normalize(feats["mid"], dim=1)
    for t in range(iterations):
        loss = ref_fspgd(mid_original, mid_adv, cosine, t, iterations)
        grad = torch.autograd.grad(loss, images)[0]
        images = ref_step_inf(images, eps, grad, orig_image, alpha)
        images.requires_grad = True
        model(images)
        mid_adv = F.normalize(feats["mid"], dim=1)
    handle.remove()
    return images.detach()


# ---- TsallisPGD: aam-at/tsallis_pgd @ f8bdbe5 .../utils/losses/tsallis.py


def ref_tsallis_ce(p, q, q_param, ignore_index=-1, eps=1e-12):
    # tsallis.py: tsallis_ce(reduction="none") for a scalar q_param
    p = F.softmax(p, dim=1).clamp_min(eps)
    batch_size, num_classes = p.shape[:2]
    targets_flat = q.long().view(batch_size, -1)
    mask_flat = targets_flat != ignore_index
    safe_targets = torch.where(mask_flat, targets_flat, torch.zeros_like(targets_flat))
    true_probs = torch.gather(p.reshape(batch_size, num_classes, -1), 1, safe_targets.unsqueeze(1)).squeeze(1)
    true_probs = true_probs.clamp_min(eps)
    q_tensor = torch.as_tensor(q_param, dtype=p.dtype).view(1).expand(batch_size).view(batch_size, 1)
    is_q_one = torch.isclose(q_tensor, torch.ones_like(q_tensor), atol=1e-6, rtol=0.0)
    one_minus_q = 1.0 - q_tensor
    safe_one_minus_q = torch.where(is_q_one, torch.ones_like(one_minus_q), one_minus_q)
    ce_loss = -torch.log(true_probs)
    tsallis_loss_val = (1.0 - true_probs.pow(one_minus_q)) / safe_one_minus_q
    loss_flat = torch.where(is_q_one.expand_as(ce_loss), ce_loss, tsallis_loss_val)
    loss_flat = torch.where(mask_flat, loss_flat, torch.zeros_like(loss_flat))
    return loss_flat.view(batch_size, *p.shape[2:])


def ref_adaptive_q(step, iterations, q_start, q_end, mode, end_fraction=0.0):
    # tsallis.py: adaptive_tsallis_ce_loss, variants q_linear / q_cosine (schedule_linear_or_cosine)
    progress = min(max(step / iterations, 0.0), 1.0)
    if end_fraction <= 0.0 or end_fraction >= 1.0:
        scaled = progress
    else:
        scaled = min(max((progress - (1.0 - end_fraction)) / end_fraction, 0.0), 1.0)
    if mode == "linear":
        return q_start + (q_end - q_start) * scaled
    return q_end + (q_start - q_end) * (1 + math.cos(math.pi * scaled)) / 2


def ref_pgd_gradient_steps(iterations):
    # base.py IterativeGradientAttack.perturb_single: the gradient of update i (0-based) is taken with
    # step=i (step=0 at the start point, then step=i+1 after update i); step=iterations only for the
    # final loss value (get_loss_at, no gradient)
    return list(range(iterations))


def segmentation_case(seed=3, n=2, h=7, w=9, k=4):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, h, w, generator=gen), torch.randint(0, k, (n, h, w), generator=gen)


def logits_case(seed=0, n=2, k=4, h=5, w=6, ignore=True):
    gen = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(n, k, h, w, generator=gen)
    labels = torch.randint(0, k, (n, h, w), generator=gen)
    if ignore:
        labels[0, 0, :2] = 255
    return logits, labels, labels != 255


# =========================================================================== SEA pixel losses


@pytest.mark.parametrize("loss", ["masked_ce", "js", "mask_norm"])
def test_sea_pixel_losses_equal_the_authors(loss):
    logits, labels, valid = logits_case()
    ref = {"masked_ce": ref_masked_cross_entropy, "js": ref_js_loss, "mask_norm": ref_single_logits_loss}[loss]
    expected = ref(logits, to_ref_labels(labels))
    ours = sea_loss(logits, labels, ctx(valid), loss=loss)
    assert (expected != 0).any()
    assert torch.allclose(ours, expected, atol=TOL)
    # reduction: pixel_to_img_loss (mean over H * W, ignored pixels 0) is our loss_normalizer "all"
    mask_background = valid.float()
    assert torch.allclose(per_image_objective(ours, valid, "all"), ref_pixel_to_img_loss(expected, mask_background),
                          atol=TOL)


def test_sea_masked_ce_tie_differs_on_purpose():
    # a tie between the label (class 1) and class 0: the reference's max(1)[1] picks the first index,
    # so the pixel is "fooled" and masked out; our correct_mask counts a tied label as predicted
    logits = torch.tensor([2.0, 2.0, 0.0]).view(1, 3, 1, 1)
    labels = torch.tensor([[[1]]])
    assert ref_masked_cross_entropy(logits, labels).item() == 0.0
    ours = sea_loss(logits, labels, ctx(labels != 255), loss="masked_ce").item()
    assert ours == pytest.approx(-math.log(math.exp(2) / (2 * math.exp(2) + 1)), abs=TOL)


def test_balanced_ce_weights_differ_on_purpose():
    logits, labels, valid = logits_case(ignore=False)
    ours = sea_loss(logits, labels, ctx(valid), loss="balanced_ce")
    # without ignored pixels our per-image weights 1 - n(y)/|V| are the early cls_balanced_loss
    assert torch.allclose(ours, ref_cls_balanced_ce(logits, labels), atol=TOL)
    # with ignored pixels the reference divides by H * W (ignored pixels included), we by |V_n|
    logits, labels, valid = logits_case(ignore=True)
    ref = ref_cls_balanced_ce(logits, to_ref_labels(labels))
    ours = sea_loss(logits, labels, ctx(valid), loss="balanced_ce")
    n_pix, n_valid = labels[0].numel(), valid[0].sum()
    y = labels[0, 1, 1]
    n_y = ((labels[0] == y) & valid[0]).sum()
    ce = F.cross_entropy(logits[:1], labels[:1], ignore_index=255, reduction="none")[0, 1, 1]
    assert ref[0, 1, 1].item() == pytest.approx(((1 - n_y / n_pix) * ce).item(), abs=TOL)
    assert ours[0, 1, 1].item() == pytest.approx(((1 - n_y / n_valid) * ce).item(), abs=TOL)
    assert not torch.allclose(ours[0], ref[0], atol=1e-4)
    assert torch.allclose(ours[1], ref[1], atol=TOL)  # image 1 has no ignored pixel


def test_balanced_masked_ce_is_the_released_loss_with_our_weights():
    # the ECCV release weights classes by a fixed per-dataset vector (VOC_WTS / ADE_WTS passed in by
    # tools/infer.py); given our per-image weights as that vector (one image), the two agree
    logits, labels, valid = logits_case(n=1, ignore=False)
    ours = sea_loss(logits, labels, ctx(valid), loss="balanced_masked_ce")
    w_pixel = class_balance_weights(labels, valid, 4)
    vector = torch.zeros(4)
    vector[labels.flatten()] = w_pixel.flatten()
    assert torch.allclose(ours, ref_masked_cross_entropy_balanced(logits, labels, vector), atol=TOL)


# =========================================================================== APGD step rule


def drive_our_rule(values, grads, x0, eps, steps):
    """Our APGDStep on a constructed trajectory: the eta used at each step and the iterates."""
    rule = APGDStep(steps)
    state = rule.init(x0, eps)
    lower, upper = (x0 - eps).clamp(min=0), (x0 + eps).clamp(max=1)
    x, etas, xs, checks = x0, [], [], []
    for t in range(steps):
        x, state = rule.step(x, grads[t], values[t], None, lower, upper, state, t)
        etas.append(state.eta.flatten().clone())
        xs.append(x.clone())
        if t > 0 and state.since_check == 0:  # a checkpoint closed a period at this step
            checks.append(t)
    return etas, xs, checks


def trajectory_oracle(values, grads):
    return lambda x_adv, e: (grads[e].clone(), values[e].clone(), None)


def constructed_trajectory(steps, seed=0, n=3):
    gen = torch.Generator().manual_seed(seed)
    x0 = 0.25 + 0.5 * torch.rand(n, 2, 3, 3, generator=gen)
    grads = torch.randn(steps + 1, n, 2, 3, 3, generator=gen)
    # image 0 climbs steadily, image 1 climbs then oscillates, image 2 stalls after its first steps
    t = torch.arange(steps + 1, dtype=torch.float32)
    values = torch.stack([1.0 + 0.1 * t, 1.0 + 0.3 * torch.sin(1.3 * t) + 0.02 * t,
                          1.0 + torch.clamp(t, max=3) * 0.2 - 0.01 * (t > 3) * (t % 2)], dim=1)
    return x0, grads, values


@pytest.mark.parametrize("steps", [10, 30, 50])
def test_apgd_step_sizes_restarts_and_momentum_equal_the_reference(steps):
    x0, grads, values = constructed_trajectory(steps)
    # f(x_1) > f(x_0) > 0 for every image: the reference's wrap-around (below) is then immaterial
    assert (values[1] > values[0]).all()
    _, _, trace = ref_apgd_train(trajectory_oracle(values, grads), x0, EPS, steps)
    etas, xs, checks = drive_our_rule(values, grads, x0, EPS, steps)
    assert torch.equal(torch.stack(etas), torch.stack(trace["step_size"]))
    assert torch.allclose(torch.stack(xs), torch.stack(trace["x"]), atol=TOL)
    # checkpoints: the reference checks after iteration i (x_{i+1} evaluated); we before the step
    # from x^{i+1}; k_0 = floor(0.22 T), then -floor(0.03 T), at least floor(0.06 T)
    assert checks == [i + 1 for i, _ in trace["checks"] if i + 1 < steps]
    halved = torch.stack(etas)[-1] < 2 * EPS
    assert halved.any() and not halved.all()  # the trajectory exercises both decisions


def test_apgd_checkpoint_positions_follow_the_reference_schedule():
    for steps in (5, 20, 100, 300):
        rule = APGDStep(steps)
        assert (rule.first_period, rule.decrement, rule.min_period) == (
            max(int(0.22 * steps), 1), max(int(0.03 * steps), 1), max(int(0.06 * steps), 1))
    # T = 100: checks after 22, 22+19, +16, +13, +10, +7, +6, ... steps (auto-attack's p_j)
    x0, grads, values = constructed_trajectory(100, n=1)
    _, _, checks = drive_our_rule(values, grads, x0, EPS, 100)
    assert checks[:8] == [22, 41, 57, 70, 80, 87, 93, 99]


def test_apgd_first_comparison_differs_on_purpose_from_the_reference_wraparound():
    # At the first checkpoint the reference compares loss_steps[0] = f(x_1) with loss_steps[-1], a row
    # not yet written (0); we compare with f(x_0), as the paper does. T = 50: k_0 = 11, halve iff
    # at most 8 of the 11 comparisons increased. Here f decreases at the first step (but stays > 0)
    # and increases at 8 of the other 10: the reference counts 9 (no halving), we count 8 (halving).
    steps = 50
    x0 = torch.full((1, 1, 2, 2), 0.5)
    grads = torch.ones(steps + 1, 1, 1, 2, 2)
    f = [5.0, 4.0] + [4.0 + i if i % 5 else 3.0 for i in range(1, 11)] + [20.0] * (steps - 11)
    values = torch.tensor(f[:steps + 1]).view(-1, 1)
    _, _, quirk = ref_apgd_train(trajectory_oracle(values, grads), x0, EPS, steps, wraparound=True)
    _, _, paper = ref_apgd_train(trajectory_oracle(values, grads), x0, EPS, steps, wraparound=False)
    etas, _, _ = drive_our_rule(values, grads, x0, EPS, steps)
    first = quirk["checks"][0][0] + 1
    assert quirk["checks"][0][1].item() == 0.0 and paper["checks"][0][1].item() == 1.0
    assert etas[first].item() == pytest.approx(EPS)  # halved, as the paper variant
    assert torch.equal(torch.stack(etas), torch.stack(paper["step_size"]))
    assert not torch.equal(torch.stack(etas), torch.stack(quirk["step_size"]))


def test_apgd_random_start_is_sea_s_not_auto_attack_s():
    # SEA's apgd_train: x + eps * t (t = 2u - 1), clamped to the box: our random start, same draw.
    # auto-attack's attack_single_run rescales t by 1 / max|t| (an L-inf norm of exactly eps): pinned.
    model = PixelLinear(torch.zeros(4, 3)).eval()  # constant logits: zero gradient, x stays at x^0
    images, labels = segmentation_case(seed=1, h=5, w=7)
    (u,) = draws(2, (3, 5, 7))
    t = 2 * u - 1
    start = build_attack("apgd", steps=2, eps=EPS, random_start=True, return_iterate="last")(
        model, images, labels, generator=gens(2))
    sea_start = (images + EPS * t).clamp(0.0, 1.0)
    assert torch.allclose(start, sea_start, atol=TOL)
    aa_start = (images + EPS * t / (t.abs().flatten(1).max(1)[0].view(-1, 1, 1, 1) + 1e-12)).clamp(0.0, 1.0)
    assert not torch.allclose(start, aa_start, atol=TOL)


def test_apgd_ce_end_to_end_equals_sea_apgd_train():
    model = TinySegNet(seed=1).eval()
    images, labels = segmentation_case()
    steps = 12
    (u,) = draws(2, tuple(images.shape[1:]))
    oracle = model_oracle(model, labels, "ce", "ce")
    args = (oracle, images, EPS, steps)
    _, ref_adv, quirk = ref_apgd_train(*args, labels=labels, t_rand=2 * u - 1, wraparound=True)
    _, _, paper = ref_apgd_train(*args, labels=labels, t_rand=2 * u - 1, wraparound=False)
    assert [c.tolist() for _, c in quirk["checks"]] == [c.tolist() for _, c in paper["checks"]]  # precondition
    assert torch.stack(quirk["step_size"])[-1].lt(2 * EPS).any()  # a halving happened
    ours = build_attack("apgd", loss="ce", steps=steps, eps=EPS, random_start=True, loss_normalizer="all")
    adv = ours(model, images, labels, generator=gens(2))
    assert torch.allclose(adv, ref_adv, atol=TOL)


def test_apgd_best_iterate_with_ignored_pixels_differs_on_purpose():
    # apgd_train scores x_0 with ignored pixels counted wrong, later iterates with them counted right
    # (pred[y == -1] = True), so x_0 wins unless an iterate is better by the whole ignored share.
    # We score every iterate by valid-pixel accuracy. 10 valid and 10 ignored pixels; x_0 has 8 of
    # the 10 valid pixels right, x_1 has 5: the reference keeps x_0 (8/20 < 15/20), we take x_1.
    correct = [8, 5]
    ref_acc = [correct[0] / 20, (correct[1] + 10) / 20]
    ref_pick = 1 if ref_acc[1] <= ref_acc[0] else 0
    cand = [torch.full((1, 1, 1, 1), float(i)) for i in range(2)]
    best, acc = _keep_best(cand[0], None, cand[0], torch.tensor([correct[0] / 10]))
    best, acc = _keep_best(best, acc, cand[1], torch.tensor([correct[1] / 10]))
    assert ref_pick == 0 and best.item() == 1.0


# =========================================================================== SEA: radius, track loss, worst case


def ref_sea_member(model, images, labels, loss, track, steps, u, wraparound):
    """One SEA member: apgd_largereps over apgd_train with ``loss`` for the gradient, ``track`` for the
    step-size decisions (tools/infer.py passes track_loss="ce-avg"), random start ``u``."""
    labels_ref = to_ref_labels(labels)
    oracle = model_oracle(model, labels_ref, loss, track)

    def run_stage(n_iter, eps, x_init):
        _, x_best_adv, _ = ref_apgd_train(oracle, images, eps, n_iter, labels=labels_ref, x_init=x_init,
                                          t_rand=2 * u - 1 if x_init is None else None, wraparound=wraparound)
        return x_best_adv

    return ref_apgd_largereps(run_stage, images, EPS, steps)


def test_radius_schedule_equals_apgd_largereps():
    assert STAGE_RADII == (2.0, 1.5, 1.0)
    for steps in (3, 10, 20, 33, 300):
        ref = [int(c * steps) for c in [0.3, 0.3]]
        assert stage_steps(steps) == [*ref, steps - sum(ref)]
    model = TinySegNet(seed=1).eval()
    images, labels = segmentation_case()
    steps = 10
    (u,) = draws(2, tuple(images.shape[1:]))
    # the reference with its first-checkpoint comparison as in the paper (f(x_1) vs f(x_0), see
    # test_apgd_first_comparison_differs_on_purpose_from_the_reference_wraparound)
    expected = ref_sea_member(model, images, labels, "masked_ce", "masked_ce", steps, u, wraparound=False)
    ours = build_attack("apgd", loss="masked_ce", steps=steps, eps=EPS, random_start=True, loss_normalizer="all",
                        radius_schedule="progressive")(model, images, labels, generator=gens(2))
    assert torch.allclose(ours, expected, atol=TOL)
    assert (ours - images).abs().max() <= EPS + 1e-6
    # pinned: masked CE drops at the first step (fooled pixels leave the mask); the reference as it is
    # counts that step as an increase (f(x_1) > 0) and halves less often at its first checkpoints
    as_is = ref_sea_member(model, images, labels, "masked_ce", "masked_ce", steps, u, wraparound=True)
    assert not torch.allclose(as_is, expected, atol=1e-4)


def test_sea_worst_case_equals_the_reference_selection_with_our_track_loss():
    # Our APGD decides step sizes on the attack loss itself; SEA's tools/infer.py runs every member
    # with track_loss="ce-avg" (plain CE decides the step sizes and the restart point). With the
    # attack loss as track loss the reference and ours agree; the worst case is per image the member
    # with the lowest accuracy, the first on ties (tools/worse_only.py: final_acc.min(0)).
    model = TinySegNet(seed=1).eval()
    images, labels = segmentation_case(seed=4)
    steps = 10
    members = ["masked_ce", "js"]
    u = draws(2, tuple(images.shape[1:]), count=len(members))  # members draw one after the other
    outs = [ref_sea_member(model, images, labels, m, m, steps, u[i], wraparound=False) for i, m in enumerate(members)]
    with torch.no_grad():
        accs = torch.stack([(model(o).argmax(1) == labels).float().flatten(1).mean(1) for o in outs])
    pick = ref_worst_case_index(accs)
    assert accs[0, 0] == accs[1, 0] and pick.tolist() == [0, 1]  # image 0: a tie (first wins); image 1: JS
    expected = torch.stack([outs[int(p)][n] for n, p in enumerate(pick)])
    ours = build_attack("sea", sea_losses=",".join(members), steps=steps, eps=EPS, random_start=True,
                        loss_normalizer="all")(model, images, labels, generator=gens(2))
    assert torch.allclose(ours, expected, atol=TOL)
    # pinned: with SEA's own track loss (CE) the JS member takes another path
    ce_tracked = ref_sea_member(model, images, labels, "js", "ce", steps, u[1], wraparound=False)
    assert not torch.allclose(ce_tracked, outs[1], atol=1e-4)


# =========================================================================== DAG


def test_dag_step_is_the_reference_linf_normalised_step():
    gen = torch.Generator().manual_seed(0)
    dr = torch.randn(3, 2, 4, 5, generator=gen)
    gamma = 0.5 / 255  # generate_config.m: step_length = 0.5 on the 0-255 scale
    ref = torch.stack([d * (gamma / d.reshape(-1).abs().max()) for d in dr])  # fooling_seg_net.m, per image
    assert torch.allclose(gamma * linf_normalise(dr), ref, atol=1e-9)


@pytest.mark.parametrize("active_set", ["not_target", "correct"])
def test_dag_end_to_end_equals_fooling_seg_net(active_set):
    # eps = 1 leaves only the box, and the iterates stay inside it, so the projection is idle and the
    # original unbounded update applies. "not_target" is the code's active set; "correct" the paper's
    # T_m (Algorithm 1), whose r_m subtracts the label logit = the predicted logit on T_m.
    model = TinySegNet(seed=1).eval()
    gen = torch.Generator().manual_seed(5)
    images = 0.35 + 0.3 * torch.rand(1, 3, 7, 9, generator=gen)
    labels = torch.randint(0, 4, (1, 7, 9), generator=gen)  # some pixels start fooled, some correct
    steps, gamma = 8, 1 / 255
    targets = target_map(labels, labels != 255, 4, "permutation", 0, PerImageRNG(gens(1), 1, images.device), 255)
    ours = build_attack("dag", steps=steps, alpha=gamma, eps=1.0, active_set=active_set)(
        model, images, labels, generator=gens(1))
    if active_set == "not_target":
        expected, itr = ref_fooling_seg_net(model, images, targets, int((labels > 0).sum()), gamma, steps)
        assert itr == steps  # precondition: the 1 % stop did not trigger
    else:
        expected = images.clone()
        for _ in range(steps):  # Algorithm 1, with T_m recomputed from the current prediction
            x = expected.detach().requires_grad_()
            z = model(x)
            on = z.argmax(1) == labels
            diff = torch.where(on, z.gather(1, targets[:, None])[:, 0] - z.gather(1, labels[:, None])[:, 0], 0.0)
            r = torch.autograd.grad(diff.sum(), x)[0]
            expected = expected + gamma * r / r.abs().max()
    assert 0 < expected.min() and expected.max() < 1
    assert torch.allclose(ours, expected, atol=TOL)


def test_dag_not_target_subtracts_the_current_prediction():
    # one pixel, K = 3: label 0, target 1, predicted 2. The reference's direction is
    # grad z_1 - grad z_2 (forward_and_back_propogation_seg.m: seg_result_target), not grad z_1 - grad z_0
    logits = torch.tensor([1.0, 0.0, 3.0]).view(1, 3, 1, 1)
    labels, targets = torch.tensor([[[0]]]), torch.tensor([[[1]]])
    out = dag_loss(logits, labels, ctx(labels != 255, targets=targets), active_set="not_target")
    assert out.item() == pytest.approx(0.0 - 3.0)
    assert dag_loss(logits, labels, ctx(labels != 255, targets=targets), active_set="correct").item() == 0.0


def test_dag_runs_every_step_where_the_reference_stops_at_one_percent():
    # K = 2, labels 1 everywhere, target class 0; 199 of 200 pixels already at the target. The
    # reference stops before its first step (1 <= 0.01 * 200 pixels remain); we keep pushing the last
    # active pixel for all T steps (no per-image stop: a stopping mask needs the core).
    weight = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    model = PixelLinear(weight).eval()
    images = torch.full((1, 3, 10, 20), 0.5)
    images[0, 0] = 0.8
    images[0, 1, 0, 0], images[0, 0, 0, 0] = 0.8, 0.5  # the one pixel still predicted as its label 1
    labels = torch.ones(1, 10, 20, dtype=torch.long)
    targets = torch.zeros_like(labels)
    expected, itr = ref_fooling_seg_net(model, images, targets, int((labels > 0).sum()), 1 / 255, 20)
    assert itr == 0 and torch.equal(expected, images)
    ours = build_attack("dag", steps=3, alpha=1 / 255, eps=EPS, target_rule="class", target_class=0,
                        active_set="not_target")(model, images, labels, generator=gens(1))
    moved = (ours - images).abs().sum(dim=1) > 0
    assert moved.sum() == 1 and moved[0, 0, 0]


def test_dag_target_rule_differs_on_purpose():
    # generate_mapping.m draws targets from the classes ABSENT from the image (injective); our rule is
    # a random K-cycle of all classes: also injective and never the label, but it may pick a present
    # class, and it works when every class is present (where the reference has no candidate).
    labels = torch.tensor([[[0, 1, 2, 3], [3, 2, 1, 0]]])
    valid = labels != 255
    ours = target_map(labels, valid, 4, "permutation", 0, PerImageRNG(gens(1), 1, labels.device), 255)
    assert (ours != labels).all()
    mapping = {int(y): int(t) for y, t in zip(labels.flatten(), ours.flatten())}
    assert len(set(mapping.values())) == 4  # a function of the label, injective
    assert set(mapping.values()) <= set(labels.unique().tolist())  # every target is a present class
    ref = ref_generate_mapping([1, 2], 6, perm=[2, 0, 1])
    assert set(ref.values()).isdisjoint({0, 1, 2}) and ref[1] != ref[2]
    with pytest.raises(IndexError):  # foreground classes 1..3 all present: no candidate
        ref_generate_mapping([1, 2, 3], 4, perm=[])


# =========================================================================== FSPGD


def feature_pair(seed=0, n=1, c=5, h=4, w=5):
    gen = torch.Generator().manual_seed(seed)
    clean = torch.randn(n, c, h, w, generator=gen)
    adv = clean + 0.7 * torch.randn(n, c, h, w, generator=gen)
    return clean, adv


@pytest.mark.parametrize("step", [0, 3, 9])
@pytest.mark.parametrize("cosine", [2.5, 3.0, 6.0])
def test_fspgd_loss_equals_the_authors_function(step, cosine):
    clean, adv = feature_pair()
    steps = 10
    raw = fspgd_loss(adv, clean, ctx(None, step=step, steps=steps), c=cosine, context_features="raw")
    assert raw.item() == pytest.approx(ref_fspgd(clean, adv, cosine, step, steps).item(), abs=TOL)
    # the authors' attack loop normalises both hooked feature maps before the call: "normalised"
    normalised = fspgd_loss(adv, clean, ctx(None, step=step, steps=steps), c=cosine, context_features="normalised")
    expected = ref_fspgd(F.normalize(clean, dim=1), F.normalize(adv, dim=1), cosine, step, steps)
    assert normalised.item() == pytest.approx(expected.item(), abs=TOL)
    assert abs(raw.item() - expected.item()) > 1e-3  # pinned: our default ("raw") is not their pipeline


def test_fspgd_batch_statistics_differ_on_purpose():
    # the authors average the local term and count the pairs over the whole batch (they attack one
    # image at a time); we sum per-image objectives, so an image's gradient ignores its batch
    clean, adv = feature_pair(n=2)
    ours = fspgd_loss(adv, clean, ctx(None, step=4, steps=10), context_features="normalised")
    singles = [ref_fspgd(F.normalize(clean[i:i + 1], dim=1), F.normalize(adv[i:i + 1], dim=1), 3.0, 4, 10)
               for i in range(2)]
    assert torch.allclose(ours, torch.stack(singles), atol=TOL)
    batch = ref_fspgd(F.normalize(clean, dim=1), F.normalize(adv, dim=1), 3.0, 4, 10)
    assert abs(ours.sum().item() - batch.item()) > 1e-3


@pytest.mark.parametrize("cosine", [1.5, 2.0])
def test_fspgd_diagonal_up_to_c_2_differs_on_purpose(cosine):
    # the reference zeroes the diagonal BEFORE the threshold: when cos(pi / c) < 0 the zeros pass it
    # and i = j pairs count. That holds for c < 2, and at c = 2 too, where torch.cos(float32(pi / 2))
    # = -4.4e-8. We always exclude i = j.
    clean, adv = feature_pair()
    ours = fspgd_loss(adv, clean, ctx(None, step=0, steps=10), c=cosine)
    ref = ref_fspgd(clean, adv, cosine, 0, 10)
    assert abs(ours.item() - ref.item()) > 1e-3


def test_fspgd_end_to_end_equals_the_authors_loop():
    model = TinySegNet(seed=1).eval()
    images = torch.rand(1, 3, 6, 7, generator=torch.Generator().manual_seed(2))
    labels = torch.zeros(1, 6, 7, dtype=torch.long)
    steps, alpha = 6, 2 / 255
    (u,) = draws(1, (3, 6, 7))
    noise = (2 * u - 1) * EPS  # init_linf's U[-eps, eps], the same draw
    expected = ref_fspgd_attack(model, "conv1", images, noise, EPS, alpha, steps, 3.0)
    ours = build_attack("fspgd", steps=steps, alpha=alpha, eps=EPS, random_start=True,
                        context_features="normalised")(model, images, labels, generator=gens(1))
    assert torch.allclose(ours, expected, atol=TOL)


# =========================================================================== TsallisPGD


@pytest.mark.parametrize("q", [-2.0, -1.0, 0.0, 0.5, 0.8, 1.0, 1.5])
def test_tsallis_loss_equals_tsallis_ce(q):
    logits, labels, valid = logits_case()
    ours = tsallis_pixel_loss(logits, labels, valid, q)
    ref = ref_tsallis_ce(logits, to_ref_labels(labels), q)
    assert torch.allclose(ours, ref, atol=TOL)
    # get_loss_at reduces by a mean over H * W: our loss_normalizer "all"
    assert torch.allclose(per_image_objective(ours, valid, "all"), ref.flatten(1).mean(1), atol=TOL)
    # targeted: get_loss_at negates the loss at the target labels
    targets = torch.where(valid, (labels + 1) % 4, 255)
    t = targeted_tsallis_loss(logits, labels, ctx(valid, targets=targets), q, q, "constant")
    assert torch.allclose(t, -ref_tsallis_ce(logits, to_ref_labels(targets), q), atol=TOL)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("steps", [1, 5, 20])
def test_tsallis_q_schedule_equals_the_adaptive_loss(schedule, steps):
    ours = [q_at(t, steps, -2.0, 1.0, schedule) for t in range(steps)]
    ref = [ref_adaptive_q(s, steps, -2.0, 1.0, schedule) for s in ref_pgd_gradient_steps(steps)]
    assert ours == pytest.approx(ref, abs=1e-12)
    assert ours[0] == -2.0 and (steps == 1 or ours[-1] < 1.0)  # q_end is the final loss's, never a step's


def test_tsallis_end_fraction_hold_is_not_offered():
    # adaptive_tsallis_ce_loss can hold q_start until the last end_fraction of the run; the paper's
    # configs (configs/loss/adaptive_tsallis_ce_loss_q_*.yaml) use end_fraction 0, our only schedule
    held = [ref_adaptive_q(s, 10, -2.0, 1.0, "linear", end_fraction=0.5) for s in range(10)]
    assert held[:6] == [-2.0] * 6 and held != [q_at(t, 10, -2.0, 1.0, "linear") for t in range(10)]
