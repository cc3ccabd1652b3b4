"""benchmarks/scaling.py runs 1 and 2 CPU processes of `benchmark run` and prints the scaling table
(its timings are not asserted; the rows, their arithmetic and the agreement of the results are)."""

import re
import subprocess
import sys

import pytest
import yaml

from benchmark.models.zoo import REPO_ROOT


@pytest.mark.slow
def test_scaling_benchmark_prints_images_per_second_and_efficiency(tmp_path):
    from benchmark.data.synthetic import generate

    root = generate(tmp_path / "synthetic-voc", layout="voc", n_train=0, n_val=4)
    config = yaml.safe_load((REPO_ROOT / "configs" / "default.yaml").read_text())
    config["data"].update(root=str(root), batch_size=2)
    config["attack"].update(attacks=["pgd"], steps=1)
    config["model"].update(targets=["default-deeplabv3-r18"])
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "benchmarks/scaling.py", "--config", str(path), "--repeats", "1",
                           "--threads", "1"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()
            if line.split()[:1] in (["1"], ["2"]) and "(all" not in line}
    assert set(rows) == {"1", "2"}, done.stdout
    (wall1, loop1, rate1, per1, eff1, _), (wall2, loop2, rate2, per2, eff2, _) = rows["1"], rows["2"]
    assert all(float(v) > 0 for v in (wall1, loop1, rate1, wall2, loop2, rate2))
    assert float(per2) == pytest.approx(float(rate2) / 2, abs=1e-3)  # per process = images/s / N
    assert float(eff1) == 1.0 and float(eff2) == pytest.approx(float(rate2) / (2 * float(rate1)), abs=2e-3)
    assert "images=4 " in done.stdout
    difference = float(re.search(r"per process: (\S+)", done.stdout).group(1))
    assert difference < 0.05
