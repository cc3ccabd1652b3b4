"""The prepared GPU check script runs end to end in its CPU smoke mode, so it is ready when a GPU is."""

import os
import subprocess
import sys

import pytest

from benchmark.models.zoo import REPO_ROOT


@pytest.mark.slow
def test_gpu_check_script_smoke_run_on_cpu(tmp_path):
    env = {**os.environ, "DEVICE": "cpu", "SMOKE": "1", "PYTHON": sys.executable, "OUT": str(tmp_path),
           "WHEELS": str(tmp_path / "no-wheels")}
    result = subprocess.run(["bash", "benchmarks/gpu_check.sh"], capture_output=True, text=True, timeout=600,
                            cwd=REPO_ROOT, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = result.stdout.split("== GPU check summary")[1].splitlines()
    rows = [line.split() for line in summary if line.startswith("    pspnet-r50")]
    assert [row[1] for row in rows] == ["pgd", "transegpgd"]
    assert all(float(row[3]) > 0 and float(row[4]) > 0 for row in rows)  # seconds per step, fp32 and bf16
    assert all(float(row[6]) > 0 for row in rows)  # bf16 with the model in channels_last memory
    assert any(line.startswith("DDP, all devices       2 processes, 4 images, clean mIoU") for line in summary)
    assert (tmp_path / "gpu_check.json").is_file() and (tmp_path / "ddp" / "results.json").is_file()
    assert any(line.startswith("size buckets           exit 0") for line in summary)
    buckets = [line.split() for line in summary if line.startswith("    batch ")]
    assert [row[1].rstrip(",") for row in buckets] == ["1", "2"]
    assert any(line.startswith("    per-image records of the two settings: ") for line in summary)
