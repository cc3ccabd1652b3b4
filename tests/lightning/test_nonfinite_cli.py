"""A checkpoint with NaN weights stops `benchmark run` at load, as a target and as a source: one error line,
exit 2, no result and nothing journalled (pitfalls §23).

The damaged model is a user zoo entry without a recorded sha256 (``BENCHMARK_MODEL_ZOO``): an entry with
one (every shipped model) refuses a changed file earlier, with a checksum mismatch.
"""

import os
import subprocess
import sys

import pytest
import torch

from benchmark.models.zoo import REPO_ROOT

pytestmark = pytest.mark.slow
ENV = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1"}
NAME = "damaged-deeplabv3-r18"
TENSOR = "decode_head.conv_seg.weight"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from benchmark.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("data") / "synthetic-voc", layout="voc", n_train=0, n_val=4)


@pytest.fixture(scope="module")
def damaged_zoo(tmp_path_factory):
    """A zoo folder with the default DeepLabV3 whose head weight has one NaN row; (folder, checkpoint)."""
    folder = tmp_path_factory.mktemp("zoo")
    checkpoint = torch.load(REPO_ROOT / "checkpoints" / "default-deeplabv3-r18.pth", map_location="cpu",
                            weights_only=True)
    checkpoint["state_dict"][TENSOR][2] = float("nan")  # one class's 32 input weights
    path = folder / "damaged.pth"
    torch.save(checkpoint, path)
    config = REPO_ROOT / "configs" / "models" / "mmseg" / "deeplabv3_r18-slim-d8_synthetic-voc.py"
    (folder / "damaged.yaml").write_text(f"{NAME}:\n  config: {config}\n  dataset: synthetic-voc\n"
                                         f"  checkpoint: {path}\n")
    return folder, path


def _run(tmp_path, data_root, zoo, *model_args):
    env = {**os.environ, **ENV, "BENCHMARK_MODEL_ZOO": str(zoo)}
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR", "WANDB_ARTIFACT_DIR"):
        env[var] = str(tmp_path / "wandb-home" / var.lower())
    args = ["run", "--config", "configs/default.yaml", "--data.root", str(data_root), "--data.limit", "4",
            "--data.batch_size", "4", "--attack.attacks", "[pgd]", "--attack.steps", "2", "--logger", "none",
            "--results.quiet", "true", "--progress.refresh_rate", "0", "--results.out_dir", str(tmp_path / "run"),
            *model_args]
    return subprocess.run([sys.executable, "-m", "benchmark.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=REPO_ROOT, env=env)


@pytest.mark.parametrize("model_args", [
    ["--model.targets", f"[default-pspnet-r18, {NAME}]"],
    ["--model.source", f"[{NAME}]", "--model.targets", "[default-pspnet-r18]"],
], ids=["target", "source"])
def test_a_checkpoint_with_nan_weights_stops_the_run_at_load(model_args, damaged_zoo, data_root, tmp_path):
    zoo, path = damaged_zoo
    result = _run(tmp_path, data_root, zoo, *model_args)
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: model '{NAME}': {path}: tensor {TENSOR} holds 32 NaN and 0 inf of 224 values; "
                      "the checkpoint is damaged or its training diverged"], result.stderr[-3000:]
    out = tmp_path / "run"
    assert not (out / "results.json").exists()
    journalled = [line for p in (out / "journal").glob("rank-*.jsonl") for line in p.read_text().splitlines()[1:]]
    assert not journalled  # no batch was attacked or scored
    log = out / "run.log"
    assert not log.exists() or "first attack started" not in log.read_text()
