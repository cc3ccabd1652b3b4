"""Attack plugins end to end: ``benchmark run`` (one under 2-process DDP), ``submit``, ``leaderboard build``,
``verify``, and ``verify``'s refusal once the plugin's source changed by one character."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from benchmark.fileio import sha256_file
from benchmark.models.zoo import REPO_ROOT
from benchmark.results import read_entry, read_result
from tests.lightning.test_pipeline import data_root  # noqa: F401  (module fixture)
from tests.plugin_toys import BROKEN_ATTACK, write_attack_file, write_entry_point_package

pytestmark = pytest.mark.slow
TARGET = "default-deeplabv3-r18"


def _cli(*args, env_extra=None, timeout=600):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "benchmark.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO_ROOT, env=env)


def _run_args(root, out, attack, *extra):
    return ["run", "--config", "configs/default.yaml", "--data.root", str(root), "--data.batch_size", "1",
            "--attack.steps", "2", "--attack.attacks", json.dumps([attack]), "--model.targets", json.dumps([TARGET]),
            "--logger", "none", "--results.out_dir", str(out), *extra]


def _submit_build_verify(run_dir, board, pages, root, env_extra=None):
    submitted = _cli("submit", str(run_dir / "results.json"), "--leaderboard", str(board), env_extra=env_extra)
    assert submitted.returncode == 0, submitted.stderr
    (entry_path,) = sorted((board / "entries").rglob("*.json"))
    built = _cli("leaderboard", "build", "--root", str(board), "--out", str(pages), env_extra=env_extra)
    assert built.returncode == 0, built.stderr
    checked = _cli("verify", str(entry_path), "--images", "1", "--data-root", str(root), env_extra=env_extra)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "agrees with the entry" in checked.stdout
    return entry_path, read_entry(entry_path), (pages / "leaderboard.md").read_text()


@pytest.fixture(scope="module")
def plugin_file(tmp_path_factory):
    return write_attack_file(tmp_path_factory.mktemp("plugin"))


def test_a_plugin_file_runs_is_submitted_shown_and_verified_and_a_changed_source_is_refused(
        plugin_file, data_root, tmp_path):  # noqa: F811
    run = _cli(*_run_args(data_root, tmp_path / "run", "toyattack+toyscale+mi", "--attack.plugins",
                          json.dumps([str(plugin_file)])))
    assert run.returncode == 0, run.stderr[-3000:]
    (attack,) = read_result(tmp_path / "run" / "results.json").attacks
    assert attack.name == "toyattack+mi+toyscale" and attack.settings["toy_power"] == 1.0
    assert attack.origin.to_dict() == {"import": str(plugin_file), "distribution": None, "version": None,
                                       "sha256": {"toy_attack.py": sha256_file(plugin_file)}}

    entry_path, entry, page = _submit_build_verify(tmp_path / "run", tmp_path / "board", tmp_path / "pages", data_root)
    assert entry.attack.origin == attack.origin
    assert f"| {plugin_file} |" in page  # the origin column

    plugin_file.write_text(plugin_file.read_text().replace("default 1", "default 2"))  # one character
    refused = _cli("verify", str(entry_path), "--images", "1", "--data-root", str(data_root))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert refused.stderr.count("\n") == 1 and "toy_attack.py differs from the recorded source" in refused.stderr


def test_an_entry_point_plugin_runs_under_two_process_ddp_and_verifies(data_root, tmp_path):  # noqa: F811
    site = write_entry_point_package(tmp_path / "site")
    env = {"PYTHONPATH": str(site)}
    run = _cli(*_run_args(data_root, tmp_path / "run", "toypkgattack+pkgscale", "--trainer.accelerator", "cpu",
                          "--trainer.devices", "2", "--trainer.strategy", "ddp"), env_extra=env)
    assert run.returncode == 0, run.stderr[-3000:]
    result = read_result(tmp_path / "run" / "results.json")
    (attack,) = result.attacks
    assert (attack.origin.import_, attack.origin.distribution, attack.origin.version) == (
        "toy_pkg.attacks", "toy-bench-plugin", "0.3.1")
    assert result.dataset.num_images == 3

    entry_path, entry, page = _submit_build_verify(tmp_path / "run", tmp_path / "board", tmp_path / "pages",
                                                   data_root, env)
    assert "| toy_pkg.attacks 0.3.1 |" in page
    source = site / "toy_pkg" / "attacks.py"
    source.write_text(source.read_text() + "#")
    refused = _cli("verify", str(entry_path), "--images", "1", "--data-root", str(data_root), env_extra=env)
    assert refused.returncode == 2 and "toy_pkg/attacks.py differs from the recorded source" in refused.stderr


def test_submit_refuses_a_plugin_result_without_its_provenance(plugin_file, data_root, tmp_path):  # noqa: F811
    run = _cli(*_run_args(data_root, tmp_path / "run", "toyattack", "--attack.plugins", json.dumps([str(plugin_file)]),
                          "--data.limit", "1"))
    assert run.returncode == 0, run.stderr[-3000:]
    raw = json.loads((tmp_path / "run" / "results.json").read_text())
    assert raw["attacks"][0]["origin"]["import"] == str(plugin_file)
    del raw["attacks"][0]["origin"]
    stripped = tmp_path / "stripped.json"
    stripped.write_text(json.dumps(raw))
    refused = _cli("submit", str(stripped), "--leaderboard", str(tmp_path / "board"))
    assert refused.returncode == 2
    assert "attack 'toyattack' uses plugin code (toyattack) but records no origin" in refused.stderr


def test_a_broken_plugin_is_refused_before_any_work(data_root, tmp_path):  # noqa: F811
    broken = write_attack_file(tmp_path, BROKEN_ATTACK.replace("import torch", "import torch\nraise RuntimeError('x')"),
                               "broken.py")
    run = _cli(*_run_args(data_root, tmp_path / "run", "leakyattack", "--attack.plugins", json.dumps([str(broken)])))
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1] == (f"error: plugin {str(broken)!r}: failed to import (broken.py:4: "
                                                   "RuntimeError: x)")
    assert not (tmp_path / "run" / "results.json").exists()
