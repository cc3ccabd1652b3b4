"""``benchmark summarize --out DIR`` never leaves an earlier join (or run) beside a new summary: earlier
outputs go to ``DIR/replaced-<UTC time>/``; an ``--out`` that is one of the summarized runs is refused."""

from __future__ import annotations

import pytest

from benchmark.cli import main
from benchmark.results import read_result, write_result
from tests.results.results_factory import build_result


@pytest.fixture
def runs(tmp_path):
    """Two runs that join into one source x target matrix ("a", "b") and one of other images ("other")."""
    made = {"a": build_result(source=("src",)), "b": build_result(source=("src2",)),
            "other": build_result(source=("src2",), num_images=2, split_size=2)}
    for name, result in made.items():
        write_result(tmp_path / name / "results.json", result)
    return {name: tmp_path / name for name in made}


def _summarize(*args) -> int:
    return main(["summarize", *map(str, args)])


def _replaced(out):
    return sorted(out.glob("replaced-*"))


@pytest.mark.parametrize("second", [("a", "other"), ("a",), ("a", "b", "--no-join")],
                         ids=["not-joinable", "one-run", "no-join"])
def test_a_summary_that_joins_nothing_moves_the_earlier_join_aside(runs, tmp_path, capsys, second):
    out = tmp_path / "out"
    assert _summarize(runs["a"], runs["b"], "--out", out) == 0
    joined = (out / "results.json").read_bytes()
    assert read_result(out / "results.json").source_ids == ("src", "src2")
    earlier = sorted(p.name for p in out.iterdir())
    assert {"results.json", "results.md", "per_class_metrics.csv", "summary.csv", "summary.md"} <= set(earlier)
    capsys.readouterr()

    assert _summarize(*(runs[s] if s in runs else s for s in second), "--out", out) == 0
    captured = capsys.readouterr()
    (replaced,) = _replaced(out)
    assert not (out / "results.json").exists() and not (out / "results.md").exists()
    assert not list(out.glob("heatmap*.png")) and not list(out.glob("matrix_*.png"))
    assert sorted(p.name for p in out.iterdir()) == sorted(["summary.csv", "summary.md", replaced.name])
    assert sorted(p.name for p in replaced.iterdir()) == earlier  # all of the earlier call's output, intact
    assert (replaced / "results.json").read_bytes() == joined
    notes = [line for line in captured.err.splitlines() if line.startswith("note:")]
    assert notes == [f"note: moved the earlier results and summary in {out} to {replaced}"]
    assert str(runs["a"]) in (out / "summary.csv").read_text()


def test_a_new_join_replaces_the_earlier_one_and_a_first_summary_moves_nothing(runs, tmp_path, capsys):
    out = tmp_path / "out"
    assert _summarize(runs["a"], runs["b"], "--out", out) == 0
    assert "note: moved" not in capsys.readouterr().err and _replaced(out) == []
    assert _summarize(runs["a"], runs["b"], "--out", out) == 0
    (replaced,) = _replaced(out)
    assert (out / "results.json").exists() and (replaced / "results.json").exists()
    assert read_result(out / "results.json") == read_result(replaced / "results.json")


def test_the_outputs_of_a_run_in_out_are_moved_aside_too(runs, tmp_path):
    out = tmp_path / "out"
    write_result(out / "results.json", build_result(source=("src",), num_images=3, split_size=3))
    for name in ("results.md", "per_class_metrics.csv", "heatmap.png", "config.yaml", "run.log", "notes.txt"):
        (out / name).write_text(name)
    (out / "adv").mkdir()
    assert _summarize(runs["a"], "--out", out) == 0
    (replaced,) = _replaced(out)
    assert sorted(p.name for p in replaced.iterdir()) == ["adv", "config.yaml", "heatmap.png",
                                                          "per_class_metrics.csv", "results.json", "results.md",
                                                          "run.log"]
    assert sorted(p.name for p in out.iterdir()) == sorted(["notes.txt", "summary.csv", "summary.md", replaced.name])


@pytest.mark.parametrize("given", ["folder", "file"])
def test_out_equal_to_a_summarized_run_is_refused_and_nothing_moves(runs, capsys, given):
    before = sorted(p.name for p in runs["a"].iterdir())
    first = runs["a"] if given == "folder" else runs["a"] / "results.json"
    assert _summarize(first, runs["b"], "--out", runs["a"]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert errors == [f"error: --out {runs['a']} is the folder of the summarized run {runs['a'] / 'results.json'}; "
                      "choose another --out"]
    assert sorted(p.name for p in runs["a"].iterdir()) == before == ["results.json"]
    assert _summarize(runs["b"], runs["a"] / ".." / "a", "--out", runs["a"]) == 2  # another spelling, same folder
