"""Long jobs: kill and resume, signals, one run per out_dir, preflight failures before any attack."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark.models.zoo import REPO_ROOT

pytestmark = pytest.mark.slow
ENV = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from benchmark.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("data") / "synthetic-voc", layout="voc", n_train=0, n_val=6)


def _args(data_root, out_dir, *extra):
    return ["run", "--config", "configs/default.yaml", "--data.root", str(data_root), "--data.batch_size", "1",
            "--attack.steps", "3", "--attack.attacks", "[pgd, segpgd]", "--logger", "none",
            "--results.quiet", "true", "--progress.refresh_rate", "0", "--results.out_dir", str(out_dir), *extra]


def _env(tmp_path, **extra):
    env = {**os.environ, **ENV, **extra}
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR", "WANDB_ARTIFACT_DIR"):
        env[var] = str(tmp_path / "wandb-home" / var.lower())
    return env


def _cli(args, tmp_path, **env):
    return subprocess.run([sys.executable, "-m", "benchmark.cli", *args], capture_output=True, text=True,
                          timeout=600, cwd=REPO_ROOT, env=_env(tmp_path, **env))


def _start(args, tmp_path, **env):
    return subprocess.Popen([sys.executable, "-m", "benchmark.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT, env=_env(tmp_path, **env))


def _journalled(out_dir: Path) -> int:
    return sum(max(0, len(p.read_text().splitlines()) - 1) for p in (out_dir / "journal").glob("rank-*.jsonl"))


def _stop_after(process, out_dir: Path, batches: int, sig) -> None:
    deadline = time.monotonic() + 300
    while _journalled(out_dir) < batches and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be interrupted"
    process.send_signal(sig)
    process.wait(timeout=300)


def _comparable(out_dir: Path) -> dict:
    raw = json.loads((out_dir / "results.json").read_text())
    raw.pop("timings")
    return raw


@pytest.fixture(scope="module")
def uninterrupted(data_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("whole")
    result = _cli(_args(data_root, tmp / "run"), tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    return _comparable(tmp / "run")


@pytest.mark.parametrize(("first", "second"), [(1, 1), (2, 2), (2, 1)], ids=["1-process", "2-processes", "2-then-1"])
def test_a_killed_run_resumes_exactly(first, second, data_root, uninterrupted, tmp_path):
    out = tmp_path / "run"
    ddp = lambda n: [] if n == 1 else ["--trainer.accelerator", "cpu", "--trainer.devices", str(n),  # noqa: E731
                                       "--trainer.strategy", "ddp"]
    port = str(29600 + first * 10 + second)
    process = _start(_args(data_root, out, *ddp(first)), tmp_path, MASTER_PORT=port)
    _stop_after(process, out, batches=2, sig=signal.SIGKILL)
    if first > 1:  # SIGKILL reaches only the launching process; its DDP worker goes down with the group
        time.sleep(2)
    done = _journalled(out)
    assert 2 <= done < 6 and not (out / "results.json").exists()
    resumed = _cli(_args(data_root, out, *ddp(second)), tmp_path, MASTER_PORT=str(int(port) + 100))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming: {done} of 6 images are journalled" in resumed.stderr
    assert _comparable(out) == uninterrupted
    assert not (out / "journal").exists() and not (out / ".lock").exists()


def test_sigterm_stops_after_the_batch_exits_143_and_resumes(data_root, uninterrupted, tmp_path):
    out = tmp_path / "run"
    process = _start(_args(data_root, out), tmp_path)
    _stop_after(process, out, batches=1, sig=signal.SIGTERM)
    assert process.returncode == 143
    errors = [line for line in process.stderr.read().splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "stopped by SIGTERM" in errors[0] and "rerun the same command to resume" in errors[0]
    assert not (out / "results.json").exists() and not (out / ".lock").exists()
    resumed = _cli(_args(data_root, out), tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _comparable(out) == uninterrupted


def test_sigint_exits_130(data_root, tmp_path):
    out = tmp_path / "run"
    process = _start(_args(data_root, out), tmp_path)
    _stop_after(process, out, batches=1, sig=signal.SIGINT)
    assert process.returncode == 130
    assert "stopped by SIGINT" in process.stderr.read()


def test_another_configuration_is_not_mixed_in_and_fresh_starts_over(data_root, tmp_path):
    out = tmp_path / "run"
    process = _start(_args(data_root, out), tmp_path)
    _stop_after(process, out, batches=1, sig=signal.SIGKILL)
    changed = _cli(_args(data_root, out, "--attack.steps", "4"), tmp_path)
    errors = [line for line in changed.stderr.splitlines() if line.startswith("error:")]
    assert changed.returncode == 2 and len(errors) == 1
    assert "another configuration (its attacks, config differ); rerun with --fresh" in errors[0]
    fresh = _cli(_args(data_root, out, "--attack.steps", "4", "--fresh"), tmp_path)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert "resuming" not in fresh.stderr
    assert json.loads((out / "results.json").read_text())["attacks"][0]["settings"]["steps"] == 4


def test_a_second_run_into_a_busy_out_dir_is_refused_and_old_results_are_moved_aside(data_root, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "results.json").write_text("{}")  # an earlier run's result: must not look current
    process = _start(_args(data_root, out, "--attack.steps", "400"), tmp_path)  # busy for a while
    try:
        deadline = time.monotonic() + 120
        while not (out / ".lock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        second = _cli(_args(data_root, out), tmp_path)
        assert second.returncode == 2 and "another run (pid" in second.stderr and str(out) in second.stderr
        assert not (out / "results.json").exists()
        assert [p.name for p in out.glob("replaced-*/*")] == ["results.json"]
    finally:
        process.kill()
        process.wait()


def _corrupt(root: Path, how: str) -> None:
    labels = sorted((root / "SegmentationClass").glob("*.png"))
    images = sorted((root / "JPEGImages").glob("*.jpg"))
    if how == "label-value":
        pixels = np.asarray(Image.open(labels[-1])).copy()
        pixels[0, 0] = 9  # the dataset has 7 classes
        Image.fromarray(pixels, mode="L").save(labels[-1])
    elif how == "rgb-label":
        Image.open(labels[-1]).convert("RGB").save(labels[-1])
    elif how == "corrupt-image":
        images[-1].write_bytes(b"not a jpeg")
    elif how == "empty-image":
        images[-1].write_bytes(b"")
    elif how == "size-mismatch":
        Image.open(labels[-1]).resize((20, 20)).save(labels[-1])
    elif how == "mixed-sizes":
        Image.open(images[-1]).resize((80, 60)).save(images[-1])
        Image.open(labels[-1]).resize((80, 60), Image.NEAREST).save(labels[-1])


@pytest.mark.parametrize(("how", "extra", "culprit"), [
    ("label-value", [], "contains value 9 outside [0, 7)"),
    ("rgb-label", [], "has mode 'RGB'"),
    ("corrupt-image", [], "unreadable or corrupt image"),
    ("empty-image", [], "unreadable or corrupt image"),
    ("size-mismatch", [], "but its label"),
    ("mixed-sizes", ["--data.batch_size", "2"], "needs images of one size"),
])
def test_data_problems_in_the_last_image_fail_before_any_attack(how, extra, culprit, data_root, tmp_path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(data_root, root)
    _corrupt(root, how)
    start = time.monotonic()
    result = _cli(_args(root, tmp_path / "run", *extra), tmp_path)
    errors = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("note:")]
    assert result.returncode == 2 and len(errors) == 1 and culprit in errors[0], result.stderr[-2000:]
    assert not (tmp_path / "run" / "journal").exists()  # no batch was attacked
    assert not (tmp_path / "run" / ".lock").exists()  # a refused run leaves no lock behind (another node's rerun)
    assert time.monotonic() - start < 120


@pytest.mark.parametrize(("extra", "env", "culprit"), [
    (["--trainer.limit_val_batches", "0.5"], {}, "trainer.limit_val_batches 0.5 would score part of the split"),
    (["--trainer.fast_dev_run", "true"], {}, "trainer.fast_dev_run True would score part of the split"),
    (["--trainer.accelerator", "gpu"], {"CUDA_VISIBLE_DEVICES": ""}, "no CUDA device is visible"),
    (["--logger", "wandb", "--wandb.mode", "online"], {"WANDB_API_KEY": "", "HOME": "/nonexistent"},
     "needs a W&B login"),
    (["--logger", "wandb", "--wandb.mode", "online"], {"WANDB_API_KEY": "x" * 40, "WANDB_BASE_URL": "http://127.0.0.1:9"},
     "http://127.0.0.1:9 cannot be reached"),
    (["--attack.eps", "1"], {}, "a quarter of the pixel range or more"),
    (["--attack.alpha", "0.1"], {}, "is larger than eps"),
])
def test_option_problems_fail_at_once_with_one_line(extra, env, culprit, data_root, tmp_path):
    start = time.monotonic()
    result = _cli(_args(data_root, tmp_path / "run", *extra), tmp_path, **env)
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(errors) == 1 and culprit in errors[0], result.stderr[-2000:]
    assert not (tmp_path / "run" / "journal").exists()
    assert time.monotonic() - start < 60


def test_a_data_error_in_a_loader_worker_is_one_line(data_root, tmp_path):
    """With the scan skipped, the error surfaces in a DataLoader worker: still its own one line."""
    import shutil

    root = tmp_path / "data"
    shutil.copytree(data_root, root)
    _corrupt(root, "label-value")
    result = _cli(_args(root, tmp_path / "run", "--data.preflight", "false", "--data.num_workers", "2"), tmp_path)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr[-3000:]
    assert "contains value 9 outside [0, 7)" in errors[0] and "Traceback" not in result.stderr


def test_an_out_dir_under_a_file_fails_before_any_attack(data_root, tmp_path):
    blocker = tmp_path / "some_file"
    blocker.write_text("x")
    result = _cli(_args(data_root, blocker / "sub"), tmp_path)
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and errors == [f"error: results.out_dir {blocker / 'sub'} cannot be used: "
                                                 "Not a directory"]


def test_a_resumed_run_continues_its_wandb_run_and_leaves_no_empty_logger_folders(data_root, tmp_path):
    out = tmp_path / "run"
    args = [a if a != "none" else "wandb" for a in _args(data_root, out)]
    process = _start(args, tmp_path)
    _stop_after(process, out, batches=1, sig=signal.SIGTERM)
    assert process.returncode == 143
    run_id = (out / "journal" / "wandb-id").read_text().strip()
    resumed = _cli(args, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    runs = sorted(p.name for p in (out / "wandb").glob("offline-run-*"))
    assert runs and all(name.endswith(f"-{run_id}") for name in runs)  # one W&B run, continued
    refused = _cli([*_args(data_root, tmp_path / "refused", "--logger", "csv"), "--attack.eps", "1"], tmp_path)
    assert refused.returncode == 2 and not (tmp_path / "refused" / "csv").exists()


def test_sigusr1_under_slurm_requeues_the_job_and_the_requeued_run_resumes(data_root, uninterrupted, tmp_path):
    """A fake ``scontrol`` records the requeue; the SLURM variables make Lightning see a one-task job."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path / 'scontrol.args'}\n")
    (bin_dir / "scontrol").chmod(0o755)
    slurm = {"SLURM_JOB_ID": "4242", "SLURM_NTASKS": "1", "SLURM_JOB_NAME": "bench", "SLURM_PROCID": "0",
             "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    out = tmp_path / "run"
    process = _start(_args(data_root, out), tmp_path, **slurm)
    _stop_after(process, out, batches=1, sig=signal.SIGUSR1)
    assert process.returncode == 138, process.stderr.read()[-2000:]
    assert "requeued SLURM job 4242: it resumes from the journal" in process.stderr.read()
    assert (tmp_path / "scontrol.args").read_text().split() == ["requeue", "4242"]
    assert not list(Path(REPO_ROOT).glob("hpc_ckpt_*.ckpt"))  # Lightning's own requeue did not run
    resumed = _cli(_args(data_root, out), tmp_path, **slurm)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _comparable(out) == uninterrupted
