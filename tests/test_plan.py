"""`benchmark plan`: the cost arithmetic by hand, the registry's pass counts against their analytic values,
mmseg's window formula against a counted slide forward, and the command as a user meets it."""

import functools
import json
import os
import subprocess
import sys

import pytest
import torch
from PIL import Image

from benchmark.attacks import ATTACKS, MODIFIERS, Passes, build_attack, count_passes
from benchmark.attacks.registry import copy_settings
from benchmark.costs import (FixedCosts, Job, ModelCost, Totals, image_seconds, largest_fitting, largest_size,
                             rank_seconds, size_histogram, slide_windows, totals, wall_seconds)
from benchmark.errors import ConfigError
from benchmark.models.zoo import REPO_ROOT
from tests.attacks.conftest import ALL_NAMES, has_modifier

# --- benchmark/costs.py, checked by hand ------------------------------------------------------------------


def test_slide_windows_by_hand():
    # Cityscapes: 1024x2048, crop 512x1024, stride 768x768 -> h: 1279 // 768 + 1 = 2, w: 1791 // 768 + 1 = 3
    assert slide_windows((1024, 2048), (512, 1024), (768, 768)) == 6
    assert slide_windows((300, 400), (512, 512), (341, 341)) == 1  # smaller than a crop: one window
    assert slide_windows((512, 512), (512, 512), (341, 341)) == 1
    assert slide_windows((513, 512), (512, 512), (341, 341)) == 2  # (1 + 340) // 341 + 1
    assert slide_windows((512, 1200), (512, 512), (341, 341)) == 4  # w: (688 + 340) // 341 + 1 = 4


def test_model_cost_scales_by_area_or_by_windows():
    whole = ModelCost(grad_s=2.0, eval_s=1.0, reference=(120, 160))
    assert whole.scale((60, 80)) == 0.25 and whole.scale((120, 160)) == 1.0
    slide = ModelCost(2.0, 1.0, reference=(1024, 2048), crop=(512, 1024), stride=(768, 768))
    assert slide.scale((512, 1024)) == pytest.approx(1 / 6) and slide.scale((1024, 1024)) == pytest.approx(2 / 6)


class _P:  # a pass count as costs.py reads it
    def __init__(self, grad, eval, canvas=1.0):
        self.grad, self.eval, self.canvas = grad, eval, canvas


JOB = Job(sizes=((10, 10), (10, 10), (5, 10)), sources=(("a",),), attacks={"pgd": _P(2, 0), "x": _P(1, 1, 1.5)},
          seeds=2, targets=("a", "b"), batch_size=2, eval_batch_size=4)
COSTS = {"a": ModelCost(1.0, 0.5, (10, 10)), "b": ModelCost(0.0, 0.25, (10, 10))}


def test_image_and_rank_seconds_by_hand():
    # attack: 2 seeds x [(2 grad x 1.0 s) + (1 grad x canvas 1.5 x 1.0 s + 1 eval x 0.5 s)] = 2 x 4.0 = 8.0
    # targets: C = 1 x 2 x 2 = 4 conditions; (1 + 4) x (0.5 + 0.25) = 3.75; load 0.25 -> 12.0
    assert image_seconds(JOB, COSTS, (10, 10), load_s=0.25) == pytest.approx(12.0)
    assert image_seconds(JOB, COSTS, (5, 10), load_s=0.25) == pytest.approx(11.75 / 2 + 0.25)  # half the pixels
    ranks = rank_seconds(JOB, COSTS, [[0, 2], [1]], load_s=0.25)
    assert ranks == pytest.approx([12.0 + 6.125, 12.0])
    fixed = FixedCosts(startup_s=3.0, build_s=2.0, preflight_s=1.0)
    assert fixed.total(1) == 6.0 and fixed.total(2) == 9.0  # DDP workers start up again
    assert wall_seconds(ranks, fixed) == pytest.approx(9.0 + 18.125)
    assert wall_seconds([18.125], fixed) == pytest.approx(6.0 + 18.125)


def test_totals_and_eval_chunks_by_hand():
    # per image: grad (2 + 1) x 2 seeds = 6, eval 1 x 2 = 2; targets 2 x (1 + 4) = 10; three images
    assert totals(JOB) == Totals(images=3, conditions=4, source_grad=18, source_eval=6, target_eval=30)
    ensemble = Job(JOB.sizes, (("a", "c"),), JOB.attacks, 2, ("a",))  # every member runs every pass
    assert totals(ensemble).source_grad == 36 and totals(ensemble).target_eval == 15
    assert JOB.eval_chunk == 4  # (1 + 4) x 2 = 10 stacked, cut into 4s
    assert Job(JOB.sizes, JOB.sources, JOB.attacks, 2, JOB.targets, 2, None).eval_chunk == 10
    assert Job(JOB.sizes, JOB.sources, JOB.attacks, 2, JOB.targets, 2, 64).eval_chunk == 10


def test_sizes_and_memory_by_hand():
    sizes = [(512, 683), (512, 683), (366, 512), (512, 768), (366, 512), (512, 683)]
    assert size_histogram(sizes) == [((512, 683), 3), ((366, 512), 2), ((512, 768), 1)]
    assert largest_size(sizes) == (512, 768)
    assert largest_fitting(3.0, 10.0) == 3 and largest_fitting(5.0, 4.0) == 0


# --- the registry's pass counts -----------------------------------------------------------------------------

def _modifiers(name: str) -> set[str]:
    """The modifiers of ``name``, a preset's own included (``difgsm``: di)."""
    return {mod for mod in MODIFIERS if has_modifier(name, (mod,))}


def analytic(name: str, **settings) -> tuple[int, int]:
    """(grad, eval) per image from the attack's definition (docs/explanation/attack-core.md, "Attacks", attacks.md)."""
    s = build_attack(name, **settings).to_dict()
    base, mods = name.split("+")[0], _modifiers(name)
    steps = s["steps"]
    copies = 1
    for mod, fields in (("si", ["scale_copies"]), ("admix", ["admix_copies", "admix_mixes"]),
                        ("ssa", ["ssa_copies"]), ("bsr", ["bsr_copies"])):
        if mod in mods:
            for field in fields:
                copies *= s[field]
    per_step = copies * (1 + s["vt_samples"] if "vt" in mods else 1)  # VT: N neighbours besides the point
    # clean logits once: TranSegPGD's KL reference, a target map (DAG, +targeted), labels from the clean
    # prediction; and the clean features of a feature loss (FSPGD)
    clean_logits = ((base == "transegpgd" and s["kl_reference"] == "clean") or base == "dag" or "targeted" in mods
                    or s["label_source"] == "clean_pred")
    clean = int(clean_logits) + int(base == "fspgd")
    transformed = bool(mods & {"ni", "si", "admix", "ssa", "di", "tdi", "ds", "bsr", "blur"}) or base == "fspgd"

    def best(t: int) -> int:  # best iterate: a final check, and a check per step when the pass saw another point
        return (1 + (t if transformed else 0)) if s["return_iterate"] == "best" else 0

    # APGD / SEA with the progressive radius: three runs (30 / 30 / 40 % of the steps), each with its checks
    stages = [steps]
    if s.get("radius_schedule") == "progressive":
        stages = [n for n in (int(0.3 * steps), int(0.3 * steps), steps - 2 * int(0.3 * steps)) if n > 0]
    run_evals = sum(clean + best(t) for t in stages)
    if base == "sea":  # every member runs, then one forward per member chooses the worst case
        members = len(s["sea_losses"].split(","))
        return members * steps * per_step, members * (run_evals + 1)
    return steps * per_step, run_evals


VARIANTS = {"defaults": {}, "steps3": {"steps": 3}, "best": {"steps": 4, "return_iterate": "best"},
            "clean_pred": {"steps": 2, "label_source": "clean_pred"}}
EXTRA = [("transegpgd", {"steps": 4, "kl_reference": "label"}), ("transegpgd+di", {"steps": 3, "kl_reference": "label"}),
         ("fspgd", {"steps": 2, "label_source": "clean_pred", "return_iterate": "best"}),
         ("sea", {"steps": 5, "radius_schedule": "constant"}), ("sea", {"steps": 4, "sea_losses": "ce,js"}),
         ("apgd", {"steps": 6, "radius_schedule": "progressive"}), ("dag", {"steps": 3, "return_iterate": "best"}),
         ("segpgd+vt+ssa", {"steps": 2, "vt_samples": 3, "ssa_copies": 2}), ("pgd+bsr", {"steps": 2, "bsr_copies": 3}),
         ("pgd+admix", {"steps": 2, "admix_copies": 2, "admix_mixes": 3})]


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("name", ALL_NAMES)
def test_pass_counts_equal_the_analytic_ones(name, variant):
    settings = {**copy_settings(name, 2), **VARIANTS[variant]}
    if "steps" in ATTACKS[name.split("+")[0]].fixed:
        settings.pop("steps", None)
    passes = count_passes(name, **settings)
    assert (passes.grad, passes.eval) == analytic(name, **settings)
    assert passes.partial == (name == "fspgd")
    if not _modifiers(name) & {"di", "ds"}:
        assert passes.canvas == 1.0


@pytest.mark.parametrize(("name", "settings"), EXTRA, ids=[f"{n}-{'-'.join(map(str, s.values()))}" for n, s in EXTRA])
def test_pass_counts_follow_the_settings_that_change_them(name, settings):
    passes = count_passes(name, **settings)
    assert (passes.grad, passes.eval) == analytic(name, **settings)


@pytest.mark.parametrize(("name", "settings", "grad", "eval"), [
    ("pgd", {"steps": 10}, 10, 0), ("transegpgd", {"steps": 20}, 20, 1), ("fgsm", {}, 1, 0),
    ("transegpgd+mi", {"steps": 20}, 20, 1), ("transegpgd+ni", {"steps": 20}, 20, 1),
    ("pgd", {"steps": 10, "return_iterate": "best"}, 10, 1),
    ("pgd+di", {"steps": 10, "return_iterate": "best"}, 10, 11),
    ("transegpgd+mi+si", {"steps": 20}, 100, 1), ("bim+mi+vt", {"steps": 10}, 210, 0),
])
def test_pass_counts_of_the_readme_table(name, settings, grad, eval):
    passes = count_passes(name, **settings)
    assert (passes.grad, passes.eval) == (grad, eval)


# A drawn canvas is a mean over about 500 draws: tolerances of about 3.5 standard errors.
@pytest.mark.parametrize(("name", "settings", "expected", "tolerance"), [
    ("pgd+di", {}, 0.5 + 0.5 * 1.21, 0.015),  # canvas floor(1.1 H) x floor(1.1 W) with probability 0.5
    ("difgsm", {}, 0.5 + 0.5 * 1.21, 0.015),
    ("pgd+di", {"diversity_prob": 1.0}, 1.21, 0.0),  # every draw on the canvas: constant, counted exactly
    ("pgd+ds", {}, 13 / 12, 0.08),  # E[s^2] = (a^2 + ab + b^2) / 3 for s ~ U[0.5, 1.5]
    ("segpgd+ds", {"scale_min": 0.5, "scale_max": 1.0}, (0.25 + 0.5 + 1.0) / 3, 0.035),
])
def test_canvas_of_the_geometry_transforms(name, settings, expected, tolerance):
    assert count_passes(name, **settings).canvas == pytest.approx(expected, abs=tolerance + 1e-4)


def test_counts_are_cached_and_bad_settings_fail_like_build_attack():
    assert count_passes("segpgd", steps=7) is count_passes("segpgd", steps=7)
    assert count_passes("segpgd", steps=7) == Passes(grad=7, eval=0)
    with pytest.raises(ConfigError, match="stepz"):
        count_passes("pgd", stepz=3)


# --- mmseg's window formula against a counted slide forward ---------------------------------------------------


@pytest.fixture
def one_thread():
    """Tiny convolutions: on a busy CPU, torch's threads only wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.cache
def _tiny_slide_model(crop, stride):
    from benchmark.models import build_segmentor
    from tests.models.tiny import tiny_config

    return build_segmentor(tiny_config(mode="slide", crop_size=crop, stride=stride))


@pytest.mark.parametrize(("crop", "stride"), [((24, 24), (16, 16)), ((24, 32), (16, 20))])
@pytest.mark.parametrize("size", [(40, 56), (24, 24), (20, 30), (25, 33), (64, 41), (24, 33)])
def test_slide_window_formula_matches_a_counted_slide_forward(crop, stride, size, one_thread):
    from benchmark.lightning.calibration import geometry

    model = _tiny_slide_model(crop, stride)
    shape = geometry(model)  # crop and stride as the plan reads them: from the built segmentor's test_cfg
    assert (shape.mode, shape.crop, shape.stride) == ("slide", crop, stride)
    calls = []
    hook = model.segmentor.backbone.register_forward_hook(lambda *args: calls.append(1))
    try:
        with torch.no_grad():
            model(torch.rand(1, 3, *size))
    finally:
        hook.remove()
    assert len(calls) == slide_windows(size, shape.crop, shape.stride)


# --- the command ------------------------------------------------------------------------------------------


def _plan(*args, **env):
    env = {**os.environ, "BENCHMARK_HELP_CACHE": "0", **env}
    return subprocess.run([sys.executable, "-m", "benchmark", "plan", *args], capture_output=True, text=True,
                          timeout=300, cwd=REPO_ROOT, env=env)


def test_plan_without_calibration_prints_images_passes_and_sizes(tmp_path):
    root, out = tmp_path / "synthetic-voc", tmp_path / "plan.json"
    done = _plan("--config", "configs/default.yaml", "--calibrate", "false", "--data.root", str(root),
                 "--data.generate_val", "5", "--trainer.devices", "2", "--json", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    text = done.stdout
    # independently: the generated images' sizes from their files, the passes from the attacks' definitions
    sizes = [Image.open(p).size[::-1] for p in sorted((root / "JPEGImages").glob("*.jpg"))]
    assert len(sizes) == 5 and set(sizes) == {(120, 160)}
    assert "5 images" in text and "images per rank 3, 2" in text  # positions 0, 2, 4 and 1, 3
    assert "1 source(s) x 4 attack(s) x 1 seed(s) = 4 conditions; 3 target(s)" in text
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.startswith("  ")}
    assert rows["pgd"] == ["20", "0", "1.000"] and rows["segpgd"] == ["20", "0", "1.000"]
    assert rows["transegpgd"] == ["20", "1", "1.000"] and rows["transegpgd+mi"] == ["20", "1", "1.000"]
    assert rows["120x160"] == ["5"]
    # 5 images x 4 attacks x 20 grad; 5 x 2 clean forwards; 5 x 3 targets x (clean + 4)
    assert "passes of the job: 400 source grad + 10 source eval" in text and "75 target eval" in text
    assert "not calibrated" in text
    plan = json.loads(out.read_text())
    assert plan["images_per_rank"] == [3, 2] and plan["sizes"] == [{"height": 120, "width": 160, "images": 5}]
    assert all(m["mode"] == "whole" for m in plan["models"].values()) and "calibration" not in plan


def test_plan_calibrated_on_the_embedded_default(tmp_path, capsys):
    from benchmark.lightning.plan import plan_cli

    out = tmp_path / "plan.json"
    status = plan_cli(["--config", str(REPO_ROOT / "configs/default.yaml"), "--data.root", str(tmp_path / "data"),
                       "--data.generate_val", "3", "--attack.attacks", "[pgd]", "--attack.steps", "2",
                       "--model.targets", "[default-pspnet-r18, default-segformer-b0]", "--repeats", "1",
                       "--trainer.accelerator", "cpu", "--json", str(out)])
    text = capsys.readouterr().out
    assert status == 0, text
    calibration = json.loads(out.read_text())["calibration"]
    assert calibration["reference"] == [120, 160] and calibration["batch"] == 3
    models = calibration["models"]
    assert models["default-pspnet-r18"]["grad_s"] > 0 and models["default-segformer-b0"]["grad_s"] is None
    assert models["default-pspnet-r18"]["grad_bytes"] > 0 and models["default-segformer-b0"]["eval_bytes"] > 0
    rows = {r["processes"]: r for r in calibration["estimate"]}
    assert sorted(rows) == [1, 2, 4, 8] and [rows[p]["images_max"] for p in (1, 2, 4, 8)] == [3, 2, 1, 1]
    fixed = calibration["fixed"]
    once = fixed["startup_s"] + fixed["build_s"] + fixed["preflight_s"]
    assert rows[1]["wall_s"] == pytest.approx(once + rows[1]["slowest_rank_s"])
    assert rows[2]["wall_s"] == pytest.approx(once + fixed["startup_s"] + rows[2]["slowest_rank_s"])
    assert rows[2]["slowest_rank_s"] == pytest.approx(2 / 3 * rows[1]["slowest_rank_s"])  # equal sizes: by count
    assert "estimated wall time" in text and "share its cores" in text and ": fits" in text


def test_run_log_line_counts_the_job(tmp_path):
    from benchmark.lightning.cli import check_config
    from benchmark.lightning.plan import job_totals_line

    cli = check_config(["--config", str(REPO_ROOT / "configs/default.yaml"), "--data.root", str(tmp_path / "d"),
                        "--data.generate_val", "5", "--attack.steps", "3", "--attack.seeds", "[0, 1]",
                        "--trainer.devices", "2"])
    line = job_totals_line(cli.datamodule, cli.attack, cli.config)
    # 5 images x 2 seeds x 4 attacks x 3 grad; 2 seeds x 2 clean forwards; 3 targets x (1 + 8)
    assert line.startswith("plan: 5 images, 2 process(es) with 2-3 images each; 1 source(s) x 4 attack(s) x "
                           "2 seed(s) = 8 conditions, 3 target(s); passes of the job: 120 source grad, "
                           "20 source eval, 135 target eval"), line


@pytest.mark.parametrize(("args", "expected"), [
    (["--config", "configs/default.yaml", "--calibrate", "maybe"], 'error: Parser key "calibrate"'),
    (["--config", "configs/default.yaml", "--attack.stepz", "5"], "error: unrecognized arguments: --attack.stepz 5"),
    (["--config", "configs/voc/pspnet-r50_transfer.yaml", "--calibrate", "false", "--data.root", "no/such/VOC2012"],
     "error: VOC root (the VOC2012 folder) not found: no/such/VOC2012"),
])
def test_plan_mistakes_are_one_line(args, expected):
    done = _plan(*args)
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(errors) == 1 and errors[0].startswith(expected), done.stderr[-2000:]


def test_plan_help():
    done = _plan("--help")
    assert done.returncode == 0 and done.stdout.startswith("usage: benchmark plan")
    assert "--calibrate" in done.stdout and "--json" in done.stdout and "--attack.attacks" in done.stdout


@pytest.mark.slow
def test_plan_check_script_compares_estimate_and_run(tmp_path):
    done = subprocess.run([sys.executable, "benchmarks/plan_check.py", "--repeats", "1", "--threads", "1",
                           "--work", str(tmp_path), "--data.root", str(tmp_path / "data"), "--data.generate_val", "2",
                           "--attack.attacks", "[pgd]", "--attack.steps", "1", "--model.targets",
                           "[default-deeplabv3-r18]"],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    row = next(line for line in done.stdout.splitlines() if line.startswith("median"))
    estimate, measured, ratio = (float(v) for v in row.split()[1:4])
    # printed to 0.1 s and 0.01: the ratio of the rounded seconds may differ by their rounding
    rounding = 0.005 + (estimate / measured) * (0.05 / estimate + 0.05 / measured)
    assert estimate > 0 and measured > 0 and ratio == pytest.approx(estimate / measured, abs=rounding)
    assert ": 2 images, 1 process(es), OMP_NUM_THREADS=1" in done.stdout and "target: wall estimate" in done.stdout
