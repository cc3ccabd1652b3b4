"""The transfer benchmark end to end: CLI runs on generated data, DDP = single process, bad input."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.models.zoo import REPO_ROOT
from benchmark.results import CLEAN, read_result
from tests.lightning.wandb_records import read_offline_run

TARGETS = ["default-pspnet-r18", "default-deeplabv3-r18", "default-segformer-b0"]
ATTACKS = ["pgd", "segpgd", "transegpgd", "transegpgd+mi"]


def _run(args, tmp_path, extra_env=None, timeout=600):
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1",
           **(extra_env or {})}
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR", "WANDB_ARTIFACT_DIR"):
        env[var] = str(tmp_path / "wandb-home" / var.lower())
    return subprocess.run([sys.executable, "-m", "benchmark.cli", "run", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO_ROOT, env=env)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from benchmark.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("data") / "synthetic-voc", layout="voc", n_train=0, n_val=3)


def _common(data_root, out_dir, *extra):
    return ["--config", "configs/default.yaml", "--data.root", str(data_root), "--data.batch_size", "1",
            "--attack.steps", "2", "--results.out_dir", str(out_dir), *extra]


@pytest.fixture(scope="module")
def single_run(data_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("single")
    result = _run(_common(data_root, tmp / "run", "--logger", "wandb"), tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp / "run", result


@pytest.mark.slow
def test_cli_run_writes_results_table_heatmap_and_wandb_files(single_run, data_root):
    out_dir, process = single_run
    result = read_result(out_dir / "results.json")
    assert result.dataset.name == "synthetic-voc" and result.dataset.num_images == 3
    assert result.dataset.split_size == 3 and result.dataset.image_limit is None
    assert result.targets == tuple(TARGETS)
    assert [a.name for a in result.attacks] == ATTACKS
    assert all(a.settings["steps"] == 2 and a.settings["eps"] == pytest.approx(8 / 255) for a in result.attacks)
    assert all(len(m.checkpoint_sha256) == 64 for m in result.models)
    for target in TARGETS:
        assert result.metric(target, CLEAN).success_rate is None
        for attack in ATTACKS:
            record = result.metric(target, attack)
            assert record.num_images == 3 and 0 <= record.success_rate <= 1
    # the white-box attack hurts the source
    assert result.metric("default-pspnet-r18", "pgd").miou < result.metric("default-pspnet-r18", CLEAN).miou
    table = (out_dir / "results.md").read_text()
    assert table in process.stdout + "\n"
    assert all(f"| {attack} |" in table for attack in ATTACKS)
    assert (out_dir / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(out_dir / "results.json") in process.stdout
    wandb_files = list((out_dir / "wandb").rglob("*.wandb"))
    assert wandb_files, "no offline W&B run was written"
    run_dir = wandb_files[0].parent
    assert f"wandb sync {run_dir}" in process.stdout  # the W&B folder and the command to upload it
    media = run_dir / "files" / "media"
    tables = {re.sub(r"_\d+_[0-9a-f]+\.table\.json$", "", p.relative_to(media / "table").as_posix())
              for p in (media / "table").rglob("*.table.json")}
    assert tables == {"results/miou_percent", "results/comparisons_points", "results/perturbation",
                      *(f"per_class/{t}" for t in TARGETS)}
    assert list((media / "images" / "results").glob("heatmap*.png"))
    assert list((media / "images" / "mask").rglob("*.png"))  # the prediction / ground-truth overlays
    _check_logged_examples(media, data_root)
    logged = read_offline_run(run_dir)
    assert {"data", "model", "attack", "results", "trainer"} <= set(logged.config)
    assert logged.config["attack"]["attacks"] == ATTACKS and logged.config["attack"]["steps"] == 2
    assert logged.summary["blackbox_mean_miou/default-pspnet-r18/pgd"] == pytest.approx(
        (result.summary("default-deeplabv3-r18", "pgd").miou_mean + result.summary("default-segformer-b0", "pgd").miou_mean) / 2)
    assert logged.summary["whitebox_miou/default-pspnet-r18/pgd"] == pytest.approx(result.metric("default-pspnet-r18", "pgd").miou)
    (artifact,) = [name for name in logged.artifacts if name.startswith("results-")]
    assert logged.artifacts[artifact] == ("benchmark-results", ["config.yaml", "per_class_metrics.csv", "results.json",
                                                                "results.md"])
    assert not any(key.startswith("miou/") for key in logged.history_keys)  # no one-point charts
    # the work-dir files mmseg and SSAT users look for
    assert (out_dir / "config.yaml").read_text().startswith("# lightning.pytorch==")
    assert "command: benchmark run --config configs/default.yaml" in (out_dir / "run.log").read_text()
    assert "per-class results of default-pspnet-r18 (IoU / Acc, %)" in process.stdout
    # the audit trail: per-image records for every image x target x condition
    assert len(result.images) == 3 * len(TARGETS) * (1 + len(ATTACKS))


def _check_logged_examples(media: Path, data_root: Path) -> None:
    """The logged example images are the images themselves as uint8 RGB, not floats cast to 0/1."""
    import numpy as np
    from PIL import Image

    pngs = [np.asarray(Image.open(p).convert("RGB")) for p in (media / "images" / "examples").rglob("*.png")]
    assert pngs, "no example image was logged"
    first = np.asarray(Image.open(sorted((data_root / "JPEGImages").glob("*.jpg"))[0]).convert("RGB"))
    means = [float(p.mean()) for p in pngs]
    assert any(np.array_equal(p, first) for p in pngs)  # the clean image, pixel for pixel
    assert min(means) > 20 and all(abs(m - float(first.mean())) < 60 for m in means)


def test_limit_makes_a_partial_result(data_root, tmp_path):
    result = _run(_common(data_root, tmp_path / "run", "--logger", "none", "--data.limit", "1",
                          "--attack.attacks", "[fgsm]", "--model.targets", "[default-deeplabv3-r18]"), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    partial = read_result(tmp_path / "run" / "results.json")
    assert partial.dataset.num_images == 1 and partial.dataset.split_size == 3 and partial.dataset.is_partial
    started = re.search(r"first attack started ([\d.]+) s after the command \(rank 0\)",
                        (tmp_path / "run" / "run.log").read_text())
    assert started and 0 < float(started.group(1)) < 300
    assert partial.numerics.channels_last is False and partial.numerics.compile is None
    assert "channels_last" not in json.loads((tmp_path / "run" / "results.json").read_text())["numerics"]


def test_channels_last_and_a_compiled_source_give_the_same_numbers_and_are_recorded(data_root, tmp_path):
    common = ["--logger", "none", "--data.limit", "2", "--attack.attacks", "[pgd, transegpgd]",
              "--model.targets", "[default-pspnet-r18, default-deeplabv3-r18]"]
    plain = _run(_common(data_root, tmp_path / "plain", *common), tmp_path)
    fast = _run(_common(data_root, tmp_path / "fast", *common, "--model.channels_last", "true",
                        "--attack.compile", "eager"), tmp_path)
    assert plain.returncode == 0 and fast.returncode == 0, fast.stderr[-3000:]
    assert re.search(r"attack.compile eager: source default-pspnet-r18 compiled in [\d.]+ s", fast.stdout)
    a, b = (read_result(tmp_path / name / "results.json") for name in ("plain", "fast"))
    assert b.numerics.channels_last is True and b.numerics.compile == "eager"
    assert [(m.target, m.condition) for m in a.metrics] == [(m.target, m.condition) for m in b.metrics]
    for x, y in zip(a.metrics, b.metrics):  # float rounding at most flips a few near-tied pixels
        assert abs(x.miou - y.miou) < 0.01, (x.target, x.condition, x.miou, y.miou)
    refused = _run(_common(data_root, tmp_path / "bad", *common, "--attack.compile", "nope"), tmp_path)
    assert refused.returncode == 2 and "attack.compile: unknown torch.compile backend 'nope'" in refused.stderr


def _comparable(path: Path) -> dict:
    raw = json.loads(path.read_text())
    raw.pop("timings")
    return raw


@pytest.mark.slow
def test_same_config_and_seed_give_identical_results(single_run, data_root, tmp_path):
    result = _run(_common(data_root, tmp_path / "again", "--logger", "none"), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert _comparable(tmp_path / "again" / "results.json") == _comparable(single_run[0] / "results.json")


@pytest.mark.slow
def test_two_process_ddp_equals_one_process(single_run, data_root, tmp_path):
    # 3 images on 2 ranks: uneven shards, which a padding sampler would turn into 4 counted images
    result = _run(_common(data_root, tmp_path / "ddp", "--logger", "none", "--trainer.accelerator", "cpu",
                          "--trainer.devices", "2", "--trainer.strategy", "ddp"), tmp_path,
                  extra_env={"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29517"})
    assert result.returncode == 0, result.stderr[-3000:]
    ddp = _comparable(tmp_path / "ddp" / "results.json")
    single = _comparable(single_run[0] / "results.json")
    assert ddp["dataset"]["num_images"] == 3
    assert ddp["metrics"] == single["metrics"]
    assert ddp == single


@pytest.mark.parametrize(("override", "culprit"), [
    (["--attack.attacks", "[pgdx]"], "'pgdx'"),
    (["--attack.eps", "8"], "eps=8"),
    (["--model.targets", "[no-such-model]"], "'no-such-model'"),
    (["--data.dataset", "no-such-data"], "'no-such-data'"),
    (["--attack.attacks", "[{name: segpgd, lambda_offset: 3}]"], "lambda_offset"),
    (["--data.dataset", "voc2012", "--data.root", "/nonexistent/VOC2012"], "/nonexistent/VOC2012"),
])
def test_bad_input_is_one_line_and_exit_2_before_any_work(override, culprit, tmp_path, data_root):
    result = _run(_common(data_root, tmp_path / "run", *override), tmp_path, timeout=300)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: ") and culprit in errors[0], result.stderr[-2000:]
    assert not (tmp_path / "run" / "results.json").exists()


@pytest.fixture()
def odd_zoo(tmp_path):
    """A zoo folder with a 5-class model (mismatching synthetic-voc's 7) and one with no checkpoint."""
    import torch

    from benchmark.models import build_segmentor
    from benchmark.models.checkpoints import save_checkpoint
    from tests.models.tiny import tiny_config

    torch.manual_seed(0)
    model = build_segmentor(tiny_config(num_classes=5))
    save_checkpoint(model.segmentor, tmp_path / "five.pth")
    config = tmp_path / "five.py"
    config.write_text(f"model = {tiny_config(num_classes=5)['model']!r}\n")
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / "extra.yaml").write_text(
        f"five-classes:\n  config: {config}\n  dataset: synthetic-voc\n  checkpoint: {tmp_path / 'five.pth'}\n"
        f"absent:\n  config: {config}\n  dataset: synthetic-voc\n  checkpoint: {tmp_path / 'absent.pth'}\n")
    return zoo


@pytest.mark.parametrize(("target", "culprit"), [
    ("five-classes", "'five-classes' predicts 5 classes but the dataset has 7"),
    ("absent", "checkpoint of model 'absent' not found"),
])
def test_model_problems_are_reported_before_any_batch(target, culprit, odd_zoo, tmp_path, data_root):
    result = _run(_common(data_root, tmp_path / "run", "--logger", "none", "--model.targets", f"[{target}]"),
                  tmp_path, extra_env={"BENCHMARK_MODEL_ZOO": str(odd_zoo)}, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert culprit in result.stderr and result.stderr.count("error:") == 1
    assert "Validation DataLoader" not in result.stderr + result.stdout


def test_png_transfer_is_recorded_and_saved_files_stay_in_budget(saved_set, data_root):
    import numpy as np
    from PIL import Image

    from benchmark.data import build_dataset
    from benchmark.results.adv_manifest import read_manifest

    out = saved_set
    assert read_result(out / "results.json").adv_format == "png_uint8"
    manifest = read_manifest(out / "adv")
    assert manifest.budgets[0].levels == 8 and manifest.seeds == (0,) and len(manifest.files) == 2 * 3
    for sample in build_dataset("synthetic-voc", data_root):
        clean = np.asarray(Image.open(out / "adv" / "clean" / f"{sample['name']}.png")).astype(int)
        adv = np.asarray(Image.open(out / "adv" / "default-pspnet-r18" / "pgd" / "seed0" / f"{sample['name']}.png"))
        adv = adv.astype(int)
        assert np.array_equal(clean, (sample["image"].permute(1, 2, 0).numpy() * 255).round().astype(int))
        assert np.abs(adv - clean).max() <= 8 and np.abs(adv - clean).max() > 0


@pytest.fixture(scope="module")
def saved_set(data_root, tmp_path_factory):
    """An attacking run on two targets that saves its adversarial set (8-bit transfer)."""
    tmp = tmp_path_factory.mktemp("saved")
    result = _run(_common(data_root, tmp / "run", "--logger", "none", "--attack.attacks", "[pgd]",
                          "--model.targets", "[default-pspnet-r18, default-deeplabv3-r18]",
                          "--attack.adv_format", "png_uint8", "--results.save_adv", "true"), tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp / "run"


def _evaluate(args, tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "benchmark.cli", "evaluate", *args], capture_output=True,
                          text=True, timeout=600, cwd=REPO_ROOT, env=env)


@pytest.mark.slow
def test_a_saved_set_evaluated_on_a_new_target_equals_evaluating_it_in_the_run(saved_set, data_root, tmp_path):
    evaluated = _evaluate(["--adv", str(saved_set / "adv"), "--targets", "default-segformer-b0", "--data.root",
                           str(data_root), "--logger", "none", "--results.out_dir", str(tmp_path / "eval")], tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    result = read_result(tmp_path / "eval" / "results.json")
    assert result.targets == ("default-segformer-b0",) and result.adv_format == "png_uint8"
    assert result.provenance.adv_dir == str(saved_set / "adv") and len(result.provenance.manifest_sha256) == 64
    assert [m.name for m in result.models if "source" in m.roles] == ["default-pspnet-r18"]
    # the same attack run with the new target inside it
    inside = _run(_common(data_root, tmp_path / "inside", "--logger", "none", "--attack.attacks", "[pgd]",
                          "--attack.adv_format", "png_uint8"), tmp_path)
    assert inside.returncode == 0, inside.stderr[-3000:]
    full = read_result(tmp_path / "inside" / "results.json")

    def records(run, target):
        return sorted((repr(i.key), i.image, i.intersection, i.predicted, i.labelled, i.fooled)
                      for i in run.images if i.target == target)

    assert records(result, "default-segformer-b0") == records(full, "default-segformer-b0")
    assert result.summary("default-segformer-b0", "pgd") == full.summary("default-segformer-b0", "pgd")
    # joining the attacking run and the evaluation gives the whole run's matrix, intervals and comparisons
    joined = subprocess.run([sys.executable, "-m", "benchmark.cli", "summarize", str(saved_set / "results.json"),
                             str(tmp_path / "eval" / "results.json"), "--out", str(tmp_path / "joined")],
                            capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert joined.returncode == 0, joined.stderr[-3000:]
    both = read_result(tmp_path / "joined" / "results.json")
    assert set(both.targets) == set(full.targets)
    for field in ("metrics", "summaries", "comparisons"):
        assert sorted(getattr(both, field), key=repr) == sorted(getattr(full, field), key=repr)


@pytest.mark.parametrize("damage, message", [
    ("alter", "does not match its sha256"),
    ("extra", "not in the manifest"),
    ("budget", "over the budget of 8"),
])
def test_a_damaged_saved_set_is_refused_before_any_work(saved_set, data_root, tmp_path, damage, message):
    import hashlib
    import shutil

    import numpy as np
    from PIL import Image

    copy = tmp_path / "adv"
    shutil.copytree(saved_set / "adv", copy)
    victim = next((copy / "default-pspnet-r18" / "pgd" / "seed0").glob("*.png"))
    if damage == "extra":
        shutil.copy(victim, victim.with_name("stray.png"))
    else:
        pixels = np.asarray(Image.open(victim)).copy()
        pixels[0, 0] = (pixels[0, 0].astype(int) + (1 if damage == "alter" else 60)) % 256
        Image.fromarray(pixels).save(victim)
        if damage == "budget":  # a consistent manifest: only the budget check can catch it
            raw = json.loads((copy / "manifest.json").read_text())
            relative = victim.relative_to(copy).as_posix()
            for entry in raw["files"]:
                if entry["path"] == relative:
                    entry["sha256"] = hashlib.sha256(victim.read_bytes()).hexdigest()
            (copy / "manifest.json").write_text(json.dumps(raw))
    result = _evaluate(["--adv", str(copy), "--targets", "default-segformer-b0", "--data.root", str(data_root),
                        "--logger", "none", "--results.out_dir", str(tmp_path / "eval")], tmp_path)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1 and message in errors[0], result.stderr[-2000:]
    assert not (tmp_path / "eval").exists()


@pytest.mark.slow
def test_several_sources_and_seeds_in_one_run(data_root, tmp_path):
    result = _run(_common(data_root, tmp_path / "matrix", "--logger", "none", "--attack.attacks", "[fgsm, pgd]",
                          "--model.source", "null", "--model.sources",
                          "[default-pspnet-r18, [default-deeplabv3-r18, default-segformer-b0]]",
                          "--attack.seeds", "[0, 1]"), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run = read_result(tmp_path / "matrix" / "results.json")
    ensemble = "ens-logits-default-deeplabv3-r18+default-segformer-b0"
    assert run.source_ids == ("default-pspnet-r18", ensemble) and run.seeds == (0, 1)
    assert len(run.metrics) == len(TARGETS) * (1 + 2 * 2 * 2) and len(run.summaries) == len(TARGETS) * 2 * 2
    fgsm = [run.metric("default-segformer-b0", "fgsm", ensemble, seed).miou for seed in (0, 1)]
    pgd = [run.metric("default-segformer-b0", "pgd", ensemble, seed).miou for seed in (0, 1)]
    assert fgsm[0] == fgsm[1] and pgd[0] != pgd[1]  # FGSM has no randomness; PGD's start depends on the seed
    summary = run.summary("default-segformer-b0", "pgd", ensemble)
    assert summary.miou_mean == pytest.approx(sum(pgd) / 2) and summary.miou_std > 0
    assert run.is_white_box("default-segformer-b0", ensemble)
    assert not run.is_white_box("default-segformer-b0", "default-pspnet-r18")
    names = sorted(p.name for p in (tmp_path / "matrix").glob("*.png"))
    assert names == ["heatmap_default-pspnet-r18.png", f"heatmap_{ensemble}.png", "matrix_fgsm.png", "matrix_pgd.png"]
    report = (tmp_path / "matrix" / "results.md").read_text()
    assert "## Source x target matrices" in report and "## Each seed" in report
    assert report in result.stdout + "\n"
