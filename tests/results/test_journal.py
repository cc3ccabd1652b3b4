"""The progress journal and the run directory: durable appends, torn lines, fingerprints, lock, move-aside."""

import json
import os
import subprocess
import sys

import pytest

from benchmark.errors import ResultError
from benchmark.results import ImageRecord, PerturbationRecord
from benchmark.results.adv_manifest import SavedFile
from benchmark.results.journal import (JournalMismatch, JournalWriter, fingerprint, journal_dir, journalled_images,
                                       read_journals, remove_journals)
from benchmark.results.outdir import RunLock, earlier_results, move_aside, probe

PARTS = fingerprint({"config": {"steps": 20}, "attacks": {"pgd": "abc"}, "images": ["a", "b", "c"]})


def _record(image, condition="clean"):
    source, seed = (None, None) if condition == "clean" else ("src", 0)
    fooled = None if condition == "clean" else 1
    return ImageRecord(image, "t", source, condition, seed, (0,), (3,), (4,), (5,), fooled)


def test_finished_batches_are_read_back_from_every_rank(tmp_path):
    first, second = JournalWriter(tmp_path, 0, PARTS), JournalWriter(tmp_path, 1, PARTS)
    first.append(["a"], [_record("a"), _record("a", "pgd")], [PerturbationRecord("a", "src", "pgd", 0, 0.03, 1.5)],
                 [SavedFile("clean/a.png", "0" * 64)])
    second.append(["b"], [_record("b"), _record("b", "pgd")], [], [])
    first.close(), second.close()
    state = read_journals(tmp_path, PARTS)
    assert state.images == {"a", "b"} and len(state.records) == 4 and state.dropped_lines == 0
    assert state.saved == (SavedFile("clean/a.png", "0" * 64),)
    assert state.perturbations == (PerturbationRecord("a", "src", "pgd", 0, 0.03, 1.5),)
    assert journalled_images(tmp_path) == 2
    assert read_journals(tmp_path / "elsewhere", PARTS).images == frozenset()


def test_a_torn_last_line_is_dropped_and_cut_before_the_next_append(tmp_path):
    writer = JournalWriter(tmp_path, 0, PARTS)
    writer.append(["a"], [_record("a")], [], [])
    writer.close()
    path = journal_dir(tmp_path) / "rank-0.jsonl"
    with open(path, "a") as handle:
        handle.write('{"names": ["b"], "records": [{"ima')  # the kill hit mid-line
    state = read_journals(tmp_path, PARTS)
    assert state.images == {"a"} and state.dropped_lines == 1
    again = JournalWriter(tmp_path, 0, PARTS)
    again.append(["c"], [_record("c")], [], [])
    again.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(line) for line in lines)  # header, a, c
    assert read_journals(tmp_path, PARTS).images == {"a", "c"}


def test_a_journal_of_another_configuration_names_what_differs(tmp_path):
    JournalWriter(tmp_path, 0, PARTS).close()
    other = fingerprint({"config": {"steps": 10}, "attacks": {"pgd": "abc"}, "images": ["a", "b", "c"]})
    with pytest.raises(JournalMismatch, match=r"its config differ\); rerun with --fresh"):
        read_journals(tmp_path, other)


def test_a_damaged_line_inside_the_journal_is_an_error(tmp_path):
    writer = JournalWriter(tmp_path, 0, PARTS)
    writer.append(["a"], [_record("a")], [], [])
    writer.append(["b"], [_record("b")], [], [])
    writer.close()
    path = journal_dir(tmp_path) / "rank-0.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "garbage", lines[2]]) + "\n")
    with pytest.raises(ResultError, match="line 2 is damaged"):
        read_journals(tmp_path, PARTS)


def test_remove_journals_leaves_no_journal_folder(tmp_path):
    JournalWriter(tmp_path, 0, PARTS).close()
    (journal_dir(tmp_path) / "wandb-id").write_text("abc\n")
    remove_journals(tmp_path)
    assert not journal_dir(tmp_path).exists()


def test_probe_names_an_unusable_out_dir(tmp_path):
    blocker = tmp_path / "some_file"
    blocker.write_text("x")
    with pytest.raises(ResultError, match=rf"results.out_dir {blocker / 'sub'} cannot be used"):
        probe(blocker / "sub")
    assert probe(tmp_path / "new" / "dir").is_dir()


def test_a_live_lock_is_refused_and_a_dead_one_taken_over(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / ".lock").write_text(json.dumps({"pid": holder.pid, "host": os.uname().nodename,
                                                    "started": "then"}))
        with pytest.raises(ResultError, match=rf"another run \(pid {holder.pid} on .*\) is writing into {tmp_path}"):
            RunLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
    with RunLock(tmp_path) as lock:  # its process is gone: the lock is stale
        assert lock.held and json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    assert not (tmp_path / ".lock").exists()


def test_earlier_results_are_moved_aside(tmp_path):
    for name in ("results.json", "results.md", "heatmap.png", "matrix_pgd.png", "notes.txt"):
        (tmp_path / name).write_text(name)
    (tmp_path / "adv").mkdir()
    moved = move_aside(tmp_path)
    assert sorted(p.name for p in moved.iterdir()) == ["adv", "heatmap.png", "matrix_pgd.png", "results.json",
                                                       "results.md"]
    assert earlier_results(tmp_path) == [] and (tmp_path / "notes.txt").exists()
    assert move_aside(tmp_path) is None
