"""The out_dir lock on a cluster: who may take it over, and when (``benchmark.results.outdir.RunLock``)."""

import json
import os
import subprocess
import sys
import time

import pytest

from benchmark.errors import ResultError
from benchmark.results import outdir
from benchmark.results.outdir import LOCK, RunLock


def _write_lock(folder, age_s: float = 0.0, **fields) -> None:
    holder = {"pid": 4242, "host": "node-a", "process_start": "1", "slurm_job": None, "started": "2026-12-06 10:00:00",
              **fields}
    path = folder / LOCK
    path.write_text(json.dumps(holder))
    then = time.time() - age_s
    os.utime(path, (then, then))


@pytest.fixture(autouse=True)
def _here(monkeypatch):
    monkeypatch.setenv("BENCHMARK_HOSTNAME", "node-here")
    for name in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(name, raising=False)


def test_a_fresh_lock_of_another_host_is_refused_naming_the_holder_and_takeover(tmp_path):
    _write_lock(tmp_path, age_s=5, slurm_job="17")
    with pytest.raises(ResultError) as err:
        RunLock(tmp_path).acquire()
    text = str(err.value)
    assert "pid 4242 on node-a, SLURM job 17" in text and str(tmp_path) in text
    assert "--takeover" in text and "300 s" in text and "\n" not in text
    assert json.loads((tmp_path / LOCK).read_text())["host"] == "node-a"  # untouched


def test_takeover_takes_a_fresh_lock_and_says_so(tmp_path, capsys):
    _write_lock(tmp_path, age_s=5)
    lock = RunLock(tmp_path, takeover=True).acquire()
    assert json.loads((tmp_path / LOCK).read_text())["host"] == "node-here"
    assert "took over the lock" in capsys.readouterr().err
    lock.release()
    assert not (tmp_path / LOCK).exists()


def test_a_lock_whose_heartbeat_stopped_on_another_host_is_taken_over(tmp_path, capsys):
    _write_lock(tmp_path, age_s=outdir.STALE_S + 60)
    with RunLock(tmp_path):
        assert json.loads((tmp_path / LOCK).read_text())["host"] == "node-here"
    assert "heartbeat stopped" in capsys.readouterr().err


def test_the_same_slurm_job_after_a_requeue_takes_the_lock_over(tmp_path, monkeypatch, capsys):
    _write_lock(tmp_path, age_s=1, slurm_job="555")
    monkeypatch.setenv("SLURM_JOB_ID", "555")
    with RunLock(tmp_path):
        assert json.loads((tmp_path / LOCK).read_text())["slurm_job"] == "555"
    assert "the same SLURM job 555, requeued" in capsys.readouterr().err
    _write_lock(tmp_path, age_s=1, slurm_job="555")
    monkeypatch.setenv("SLURM_JOB_ID", "556")  # another job: refused
    with pytest.raises(ResultError, match="another run"):
        RunLock(tmp_path).acquire()


def test_an_array_task_is_its_own_job(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "900")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "890")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    assert outdir.slurm_job() == "890_3"


def test_on_this_host_a_dead_or_reused_pid_is_taken_over_and_a_live_one_refused(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _write_lock(tmp_path, host="node-here", pid=int(dead.stdout))
    RunLock(tmp_path).acquire().release()
    me = os.getpid()
    _write_lock(tmp_path, host="node-here", pid=me, process_start=outdir._process_start(me))
    with pytest.raises(ResultError, match=f"pid {me} on node-here"):
        RunLock(tmp_path).acquire()
    _write_lock(tmp_path, host="node-here", pid=me, process_start="1")  # same pid, another process start
    RunLock(tmp_path).acquire().release()


def test_an_unreadable_lock_is_taken_over_only_once_it_is_old(tmp_path):
    (tmp_path / LOCK).write_text("")  # being written by a run that just created it
    with pytest.raises(ResultError):
        RunLock(tmp_path).acquire()
    then = time.time() - 60
    os.utime(tmp_path / LOCK, (then, then))  # its writer died
    RunLock(tmp_path).acquire().release()


def test_the_heartbeat_refreshes_the_lock_and_release_spares_a_lock_taken_over(tmp_path, monkeypatch):
    monkeypatch.setattr(outdir, "HEARTBEAT_S", 0.05)
    lock = RunLock(tmp_path).acquire()
    then = time.time() - 1000
    os.utime(tmp_path / LOCK, (then, then))
    deadline = time.monotonic() + 10
    while time.time() - (tmp_path / LOCK).stat().st_mtime > 100 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert time.time() - (tmp_path / LOCK).stat().st_mtime < 100
    _write_lock(tmp_path, host="node-z")  # someone ran --takeover elsewhere
    lock.release()
    assert json.loads((tmp_path / LOCK).read_text())["host"] == "node-z"
