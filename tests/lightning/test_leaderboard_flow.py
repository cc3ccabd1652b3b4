"""submit -> leaderboard build -> verify on a real run of the embedded default, and tampering."""

import json
import os
import subprocess
import sys

import pytest

from benchmark.models.zoo import REPO_ROOT
from benchmark.results import read_entry
from benchmark.results.audit import derive_from
from benchmark.results.codec import encode
from benchmark.results.tracks import short_hash
from tests.lightning.test_pipeline import data_root, single_run  # noqa: F401  (module fixtures)

pytestmark = pytest.mark.slow


def _cli(*args, cwd=REPO_ROOT, threads="1"):
    env = {**os.environ, "OMP_NUM_THREADS": threads}  # the board's run used one thread (tests/lightning/test_pipeline.py)
    return subprocess.run([sys.executable, "-m", "benchmark.cli", *args], capture_output=True, text=True,
                          timeout=600, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def board(single_run, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("board")
    submitted = _cli("submit", str(single_run[0] / "results.json"), "--leaderboard", str(root))
    assert submitted.returncode == 0, submitted.stderr
    return root


def test_submit_stores_one_entry_per_attack_and_refuses_a_duplicate(board, single_run):  # noqa: F811
    entries = sorted((board / "entries").rglob("*.json"))
    assert sorted(read_entry(p).attack.name for p in entries) == ["pgd", "segpgd", "transegpgd", "transegpgd+mi"]
    again = _cli("submit", str(single_run[0] / "results.json"), "--leaderboard", str(board))
    assert again.returncode == 2 and "duplicate" in again.stderr


def test_leaderboard_build_writes_pages(board, tmp_path):
    built = _cli("leaderboard", "build", "--root", str(board), "--out", str(tmp_path))
    assert built.returncode == 0, built.stderr
    page = (tmp_path / "index.html").read_text()
    assert "transegpgd+mi" in page and "default-deeplabv3-r18" in page
    assert list((tmp_path / "heatmaps").glob("*.png"))


def _entry(board, attack):
    return next(p for p in (board / "entries").rglob(f"{attack}-*.json"))


def test_verify_agrees_with_an_honest_entry_exactly_when_the_numerics_match(board, data_root):  # noqa: F811
    checked = _cli("verify", str(_entry(board, "pgd")), "--images", "2", "--data-root", str(data_root))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.rstrip().endswith("agrees with the entry (tolerance 0 of valid pixels per image; "
                                            "same numerics and versions)")
    other = _cli("verify", str(_entry(board, "pgd")), "--images", "2", "--data-root", str(data_root), threads="2")
    assert other.returncode == 0, other.stdout + other.stderr
    assert "(tolerance 0.01 of valid pixels per image; numerics differ: threads 1 vs 2)" in other.stdout


def test_verify_catches_an_edited_metric(board, tmp_path):
    path = tmp_path / _entry(board, "segpgd").name
    raw = json.loads(_entry(board, "segpgd").read_text())
    raw["metrics"][1]["miou"] = min(1.0, raw["metrics"][1]["miou"] + 0.2)
    path.write_text(json.dumps(raw))
    checked = _cli("verify", str(path))
    assert checked.returncode == 2 and "edited" in checked.stderr


def test_verify_catches_a_consistently_forged_entry(board, data_root, tmp_path):  # noqa: F811
    """Forge the counts of the first image *and* the metrics that follow from them, re-hash and
    rename the file: only the re-run can tell."""
    entry = read_entry(_entry(board, "transegpgd"))
    first = entry.images[0].image
    forged_images = []
    for record in entry.images:
        if record.image == first and record.condition != "clean":
            # claim the attack fooled fewer pixels: move predictions back onto the labels
            record = type(record)(record.image, record.target, record.source, record.condition, record.seed,
                                  record.classes, record.labelled, record.labelled, record.labelled, 0)
        forged_images.append(record)
    with_images = type(entry)(**{**entry.__dict__, "images": tuple(forged_images)})
    metrics, summaries, _ = derive_from(with_images)
    forged = type(entry)(**{**with_images.__dict__, "metrics": metrics, "summaries": summaries})
    raw = encode(forged)
    path = tmp_path / f"transegpgd-{short_hash(raw)}.json"
    path.write_text(json.dumps(raw))
    checked = _cli("verify", str(path), "--images", "1", "--data-root", str(data_root))
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "MISMATCH" in checked.stdout and "DOES NOT agree" in checked.stdout


def test_verify_refuses_a_different_checkpoint(board, tmp_path):
    path = _entry(board, "pgd")
    raw = json.loads(path.read_text())
    raw["models"][0]["checkpoint_sha256"] = "0" * 64
    forged = tmp_path / f"pgd-{short_hash(raw)}.json"
    forged.write_text(json.dumps(raw))
    checked = _cli("verify", str(forged))
    assert checked.returncode == 2 and "refusing to verify" in checked.stderr


def test_unreadable_entry_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{")
    checked = _cli("verify", str(bad))
    assert checked.returncode == 2 and checked.stderr.startswith("error:") and "x.json" in checked.stderr
