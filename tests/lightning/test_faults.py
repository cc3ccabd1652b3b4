"""Fault injection: a run killed (SIGKILL) or out of disk at every phase boundary, rerun on this host
and on another one, ends with the result of an uninterrupted run; nothing finished is lost.

The faults are injected by ``tests/lightning/faults.py`` (a driver that patches the named point and
then runs ``benchmark``). "Another host" is a UTS namespace with another hostname (``unshare --uts``,
as root) or, where that is not possible, ``BENCHMARK_HOSTNAME``, which the out_dir lock reads.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.models.zoo import REPO_ROOT

pytestmark = pytest.mark.slow
DRIVER = Path(__file__).with_name("faults.py")
ENV = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
SLURM = {"SLURM_JOB_ID": "777", "SLURM_NTASKS": "1", "SLURM_JOB_NAME": "bench", "SLURM_PROCID": "0",
         "SLURM_LOCALID": "0", "SLURM_NODEID": "0"}
IMAGES = 4


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from benchmark.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("data") / "synthetic-voc", layout="voc", n_train=0, n_val=IMAGES)


def _args(data_root, out_dir, *extra):
    return ["run", "--config", "configs/default.yaml", "--data.root", str(data_root), "--data.batch_size", "1",
            "--attack.attacks", "[pgd]", "--attack.steps", "2",
            "--model.targets", "[default-pspnet-r18, default-deeplabv3-r18]", "--results.save_adv", "true",
            "--results.quiet", "true", "--progress.refresh_rate", "0", "--results.out_dir", str(out_dir), *extra]


def _can_unshare() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--uts", "true"], capture_output=True).returncode == 0


UNSHARE = _can_unshare()


def _run(command: list[str], home: Path, host: str | None = None, **env) -> subprocess.CompletedProcess:
    """``python command...`` in the repository, on this host or on ``host``."""
    full = {**os.environ, **ENV, **env}
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR", "WANDB_ARTIFACT_DIR"):
        full[var] = str(home / var.lower())
    argv = [sys.executable, *command]
    if host is not None and UNSHARE:
        argv = ["unshare", "--uts", "sh", "-c", f'hostname {host} && exec "$@"', "sh", *argv]
    elif host is not None:
        full["BENCHMARK_HOSTNAME"] = host
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT, env=full)


def _bench(args, home, host=None, fault: tuple[str, str] | None = None, **env):
    prefix = [str(DRIVER), *fault, "--"] if fault else ["-m", "benchmark.cli"]
    return _run([*prefix, *args], home, host, **env)


def _result(out: Path) -> dict:
    raw = json.loads((out / "results.json").read_text())
    raw.pop("timings")
    return raw


def _manifest(out: Path) -> dict:
    raw = json.loads((out / "adv" / "manifest.json").read_text())
    assert raw.pop("result_sha256") == hashlib.sha256((out / "results.json").read_bytes()).hexdigest()
    return raw


def _journalled(out: Path) -> int:
    names = set()
    for path in (out / "journal").glob("rank-*.jsonl"):
        for line in path.read_text().split("\n")[1:]:
            try:
                names.update(json.loads(line)["names"])
            except ValueError:
                pass  # a torn last line
    return len(names)


@pytest.fixture(scope="module")
def uninterrupted(data_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("whole")
    done = _bench(_args(data_root, tmp / "run"), tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    return _result(tmp / "run"), _manifest(tmp / "run"), tmp / "run"


def _age_lock(out: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(out / ".lock", (then, then))


# The chain: each step's run is killed at the next point and continues what the one before left, on a
# host that may take the dead run's lock over: the same host (the holder's pid is gone), another node in
# the same SLURM job (a requeue), or another node after the lost node's heartbeat stopped (the lock is
# aged past STALE_S). None is this machine's own hostname.
SAME, REQUEUE, LOST = "same host", "requeue", "lost node"
CHAIN = [
    # (point, how the run gets the lock, hostname, journalled images afterwards)
    ("write:val_00000.png", None, None, 0),        # saving the first batch's PNGs: nothing journalled yet
    ("journal:1", REQUEUE, "node-b", 1),           # after each batch line is durable
    ("journal-torn:1", REQUEUE, None, 1),          # halfway through a journal line
    ("journal:1", LOST, "node-c", 2),
    ("journal:2", SAME, "node-c", IMAGES),         # after the last journal line, before any result file
    ("write:results.json", LOST, None, IMAGES),    # during each result file's write
    ("write:manifest.json", SAME, None, IMAGES),
    ("write:results.md", LOST, "node-b", IMAGES),
    ("write:per_class_metrics.csv", SAME, "node-b", IMAGES),
    ("write:heatmap.png", LOST, "node-c", IMAGES),
    ("wandb-finish", LOST, None, IMAGES),          # during W&B's finish
    ("remove-journal", SAME, None, IMAGES),        # every file written, the journal not yet removed
]
REASONS = {SAME: "its process is gone", REQUEUE: "the same SLURM job 777, requeued", LOST: "its heartbeat stopped"}


def test_a_run_killed_at_every_phase_boundary_ends_with_the_uninterrupted_result(data_root, uninterrupted, tmp_path):
    from benchmark.results.outdir import STALE_S

    assert STALE_S < 3600
    out = tmp_path / "run"
    args = _args(data_root, out, "--logger", "wandb")
    for point, how, host, journalled in [*CHAIN, (None, SAME, None, 0)]:
        if how == LOST:
            _age_lock(out, 3600)
        env = SLURM if how == REQUEUE or (how is None) else {}
        run = _bench(args, tmp_path, host, fault=(point, "kill") if point else None, **env)
        if how is not None:
            assert f"took over the lock {out / '.lock'}" in run.stderr and REASONS[how] in run.stderr, run.stderr
        if point is None:
            assert run.returncode == 0, run.stderr[-3000:]
            break
        assert run.returncode == -9, f"{point}: exit {run.returncode}\n{run.stderr[-3000:]}"
        assert _journalled(out) == journalled, point
        assert (out / ".lock").is_file(), point  # SIGKILL: the lock stays, the next run must take it over
        if (out / "results.json").is_file():  # any result present is complete (atomic writes)
            assert _result(out) == uninterrupted[0], point
        if how is None:  # the holder is alive as far as another node can tell: a run of another job is refused
            other = _bench(args, tmp_path, "node-d")
            assert other.returncode == 2 and "--takeover" in other.stderr and "SLURM job 777" in other.stderr, \
                other.stderr[-2000:]
    assert _result(out) == uninterrupted[0]
    assert _manifest(out) == uninterrupted[1]
    assert not (out / "journal").exists() and not (out / ".lock").exists()
    assert not list(out.rglob(".*.tmp"))
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len({run.name.rsplit("-", 1)[1] for run in runs}) == 1  # one W&B run id over every attempt


def test_out_of_disk_names_the_file_keeps_the_journal_and_finalize_writes_the_result(data_root, uninterrupted,
                                                                                     tmp_path):
    out = tmp_path / "run"
    args = _args(data_root, out, "--logger", "none")
    full = _bench(args, tmp_path, fault=("journal:2", "enospc"))
    lines = [line for line in full.stderr.splitlines() if line.startswith("error:")]
    assert full.returncode == 1 and len(lines) == 1, full.stderr[-3000:]
    assert f"no space left on the device writing {out / 'journal' / 'rank-0.jsonl'}" in lines[0]
    assert f"1 of {IMAGES} images are journalled in {out}" in lines[0] and "rerun the same command" in lines[0]
    assert not (out / ".lock").exists()

    resumed = _bench(args, tmp_path, fault=("write:results.md", "enospc"))
    lines = [line for line in resumed.stderr.splitlines() if line.startswith("error:")]
    assert resumed.returncode == 1 and len(lines) == 1, resumed.stderr[-3000:]
    assert f"writing {out / 'results.md'}" in lines[0] and "results.json was written" in lines[0]
    assert f"every image ({IMAGES}) is journalled" in lines[0] and f"benchmark finalize {out}" in lines[0]

    finalized = _bench(["finalize", str(out)], tmp_path)
    assert finalized.returncode == 0, finalized.stderr[-3000:]
    assert f"resuming: {IMAGES} of {IMAGES} images are journalled in {out}; writing the result" in finalized.stderr
    assert _result(out) == uninterrupted[0] and _manifest(out) == uninterrupted[1]
    nothing = _bench(["finalize", str(out)], tmp_path)
    assert nothing.returncode == 2 and "holds no journal: nothing to finalize (its results.json is the result)" \
        in nothing.stderr


def test_finalize_writes_the_result_of_an_evaluate_run_killed_while_writing_it(data_root, uninterrupted, tmp_path):
    args = ["evaluate", "--adv", str(uninterrupted[2] / "adv"), "--targets", "default-segformer-b0",
            "--data.root", str(data_root),
            "--results.quiet", "true", "--progress.refresh_rate", "0", "--logger", "none", "--results.out_dir"]
    whole = _bench([*args, str(tmp_path / "whole")], tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed = _bench([*args, str(tmp_path / "eval")], tmp_path, fault=("write:results.json", "kill"))
    assert killed.returncode == -9 and _journalled(tmp_path / "eval") == IMAGES
    finalized = _bench(["finalize", str(tmp_path / "eval")], tmp_path)
    assert finalized.returncode == 0, finalized.stderr[-3000:]
    assert _result(tmp_path / "eval") == _result(tmp_path / "whole")


def test_finalize_refuses_an_incomplete_journal(data_root, tmp_path):
    out = tmp_path / "run"
    killed = _bench(_args(data_root, out, "--logger", "none"), tmp_path, fault=("journal:1", "kill"))
    assert killed.returncode == -9
    refused = _bench(["finalize", str(out)], tmp_path)
    lines = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert refused.returncode == 2 and len(lines) == 1, refused.stderr[-3000:]
    assert f"the journal holds 1 of {IMAGES} images; rerun the run's command to attack the other 3" in lines[0]
    assert _journalled(out) == 1 and not (out / "results.json").exists()


def test_fewer_images_left_than_processes_is_refused_before_any_attack(data_root, tmp_path):
    out = tmp_path / "run"
    refused = _bench(_args(data_root, out, "--logger", "none", "--data.limit", "1", "--trainer.devices", "2",
                           "--trainer.strategy", "ddp"), tmp_path)
    lines = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert refused.returncode == 2 and lines, refused.stderr[-3000:]
    assert "1 images are left to attack but the run has 2 processes; run it with at most 1" in lines[0]
    assert not (out / "journal").exists() and not (out / ".lock").exists()
