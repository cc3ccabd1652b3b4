"""The command line as a user meets it: entry points, help, parser errors, option conflicts."""

import subprocess
import sys

import pytest

from benchmark.models.zoo import REPO_ROOT


def _cli(*args, module="benchmark.cli"):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=300,
                          cwd=REPO_ROOT)


def test_python_m_benchmark_and_version():
    import benchmark

    for module in ("benchmark", "benchmark.cli"):
        result = _cli("--version", module=module)
        assert result.returncode == 0 and result.stdout == f"transegpgd-bench {benchmark.__version__}\n"
    listing = _cli("--help", module="benchmark")
    assert listing.returncode == 0 and "evaluate" in listing.stdout and "summarize" in listing.stdout


def test_run_help_shows_the_benchmarks_options_first_and_hides_training_only_ones():
    result = _cli("run", "--help")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    body = lines[next(i for i, line in enumerate(lines) if line.startswith("options:")):]
    first = {name: next(i for i, line in enumerate(body) if line.lstrip().startswith(f"--{name}"))
             for name in ("attack.attacks", "data.dataset", "model.targets", "results.out_dir", "trainer.devices")}
    assert max(first[n] for n in ("attack.attacks", "data.dataset", "model.targets", "results.out_dir")) < \
        first["trainer.devices"]
    for hidden in ("--trainer.max_epochs", "--trainer.gradient_clip_val", "--seed_everything", "--trainer.logger "):
        assert hidden not in result.stdout
    assert len(lines) < 450


@pytest.mark.parametrize(("args", "expected"), [
    (["--attack.stepz", "5"], "error: unrecognized arguments: --attack.stepz 5 (did you mean --attack.steps"),
    (["--attack.steps", "many"], 'error: Parser key "attack.steps":'),
    (["--trainer.logger", "false", "--logger", "csv"], "error: set the logger with --logger wandb|csv|none"),
    (["--seed_everything", "3"], "error: unrecognized arguments: --seed_everything 3"),
])
def test_option_mistakes_are_one_line(args, expected, tmp_path):
    result = _cli("run", "--config", "configs/default.yaml", "--results.out_dir", str(tmp_path / "run"), *args)
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(errors) == 1 and errors[0].startswith(expected), result.stderr[-2000:]


def test_submission_metadata_is_validated_and_shown(tmp_path):
    from benchmark.errors import ResultError
    from benchmark.results import build, submit, write_result
    from benchmark.results.entry import EntryMetadata, load_entries
    from tests.results.results_factory import build_result

    with pytest.raises(ResultError, match="date must be"):
        EntryMetadata(date="last year")
    with pytest.raises(ResultError, match="code must be an http"):
        EntryMetadata(code="github.com/x")
    write_result(tmp_path / "r.json", build_result(attacks=("pgd",)))
    meta = EntryMetadata(paper="https://arxiv.org/abs/2312.02207", authors="Jia et al.", venue="arXiv",
                         date="2023-12-04", code="https://example.org/code")
    submit(tmp_path / "r.json", tmp_path / "lb", meta)
    (entry,) = load_entries(tmp_path / "lb")
    assert entry.metadata == meta
    build(tmp_path / "lb", tmp_path / "out")
    page = (tmp_path / "out" / "index.html").read_text()
    assert "Jia et al., arXiv 2023-12-04" in page and 'href="https://arxiv.org/abs/2312.02207"' in page
    assert "| Jia et al., arXiv 2023-12-04 |" in (tmp_path / "out" / "leaderboard.md").read_text()
