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
def test_cli_run_writes_results_table_heatmap_and_wandb_files(single_run):
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
    media = wandb_files[0].parent / "files" / "media"
    tables = {re.sub(r"_\d+_[0-9a-f]+\.table\.json$", "", p.relative_to(media / "table").as_posix())
              for p in (media / "table").rglob("*.table.json")}
    assert tables == {"results/miou_percent", *(f"per_class_iou/{t}" for t in TARGETS)}
    assert list((media / "images" / "results").glob("heatmap*.png"))
    assert list((media / "images").glob("examples*.png")) and list((media / "images" / "mask").glob("*.png"))
    # the audit trail: per-image records for every image x target x condition
    assert len(result.images) == 3 * len(TARGETS) * (1 + len(ATTACKS))


def test_limit_makes_a_partial_result(data_root, tmp_path):
    result = _run(_common(data_root, tmp_path / "run", "--logger", "none", "--data.limit", "1",
                          "--attack.attacks", "[fgsm]", "--model.targets", "[default-deeplabv3-r18]"), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    partial = read_result(tmp_path / "run" / "results.json")
    assert partial.dataset.num_images == 1 and partial.dataset.split_size == 3 and partial.dataset.is_partial


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


def test_png_transfer_is_recorded_and_saved_files_stay_in_budget(data_root, tmp_path):
    import numpy as np
    from PIL import Image

    from benchmark.data import build_dataset

    out = tmp_path / "run"
    result = _run(_common(data_root, out, "--logger", "none", "--attack.attacks", "[pgd]",
                          "--model.targets", "[default-deeplabv3-r18]", "--attack.adv_format", "png_uint8",
                          "--results.save_adv", "true"), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_result(out / "results.json").adv_format == "png_uint8"
    for sample in build_dataset("synthetic-voc", data_root):
        clean = np.asarray(Image.open(out / "adv" / "clean" / f"{sample['name']}.png")).astype(int)
        adv = np.asarray(Image.open(out / "adv" / "pgd" / f"{sample['name']}.png")).astype(int)
        assert np.array_equal(clean, (sample["image"].permute(1, 2, 0).numpy() * 255).round().astype(int))
        assert np.abs(adv - clean).max() <= 8 and np.abs(adv - clean).max() > 0
