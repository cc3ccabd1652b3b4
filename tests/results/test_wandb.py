"""log_to_wandb: offline, every W&B directory under tmp_path."""

import json
from pathlib import Path

import pytest

from benchmark.results import leaderboard_tables, log_to_wandb, submit, write_result
from tests.results.results_factory import build_result


@pytest.mark.slow
def test_log_to_wandb_offline(wandb_dirs, tmp_path):
    write_result(tmp_path / "r.json", build_result())
    submit(tmp_path / "r.json", tmp_path / "lb")
    tables = leaderboard_tables(tmp_path / "lb")
    run_dir = Path(log_to_wandb(tables, project="transegpgd-test", mode="offline"))
    assert tmp_path in run_dir.parents
    run_root = run_dir.parent
    assert run_root.name.startswith("offline-run-")
    assert list(run_root.glob("*.wandb")), "no offline run file written"
    (table_file,) = run_dir.rglob("*.table.json")
    logged = json.loads(table_file.read_text())
    assert logged["columns"][:5] == ["rank", "attack", "black-box mean", "vs next", "src (white-box, clean 70.00)"]
    # pgd: (6 + 7) / 2, transegpgd: (11 + 12) / 2
    assert logged["data"][0][:5] == ["1", "pgd", "6.50 [6.50, 6.50]", "[-5.00, -5.00]", "5.00"]
    # nothing outside tmp_path was needed: the settings/cache dirs are the tmp ones
    assert (tmp_path / "wandb_dir" / "wandb") in run_root.parents
