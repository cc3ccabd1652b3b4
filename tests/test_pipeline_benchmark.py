"""benchmarks/pipeline.py does the same work as `benchmark run`: it runs end to end on generated data
and both sides give the same mIoU for every target and condition (its timings are not asserted)."""

import re
import subprocess
import sys

import pytest
import yaml

from benchmark.models.zoo import REPO_ROOT


@pytest.mark.slow
def test_pipeline_benchmark_runs_both_sides_and_they_agree(tmp_path):
    from benchmark.data.synthetic import generate

    root = generate(tmp_path / "synthetic-voc", layout="voc", n_train=0, n_val=2)
    config = yaml.safe_load((REPO_ROOT / "configs" / "default.yaml").read_text())
    config["data"].update(root=str(root), batch_size=2)
    config["attack"].update(attacks=["pgd", "transegpgd"], steps=2)
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "benchmarks/pipeline.py", "--config", str(path), "--repeats", "1"],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert re.search(r"^ratio run / plain \(paired\)\s+[\d.]+", out, re.M), out
    difference = float(re.search(r"largest \|mIoU\(run\) - mIoU\(plain\)\| over targets and conditions: (\S+)", out).group(1))
    assert difference < 1e-9, out
    for phase in ("start and imports", "model building", "data loading", "attack", "target evaluation"):
        assert re.search(rf"^  {phase}\s+[\d.]+$", out, re.M), phase
    first = re.search(r"^  command to first attack \(run\.log\)\s+([\d.]+)$", out, re.M)
    assert first and 0 < float(first.group(1)) < 600, out
    for label in ("benchmark --help", "benchmark run --help (cached)", "benchmark run --help (no cache)"):
        assert re.search(rf"^  {re.escape(label)}\s+[\d.]+\s+[\d.]+\s+[\d.]+$", out, re.M), label
