"""The command line as a user meets it: entry points, help, parser errors, option conflicts."""

import os
import subprocess
import sys

import pytest

from benchmark.models.zoo import REPO_ROOT


def _cli(*args, module="benchmark.cli", **env):
    # no help cache unless a test asks for one (it would live in the user's home)
    env = {**os.environ, "BENCHMARK_HELP_CACHE": "0", **env}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=300,
                          cwd=REPO_ROOT, env=env)


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
    assert len(lines) < 480


def test_bare_help_is_served_from_the_cache_and_equals_the_parsers(tmp_path):
    cache = {"BENCHMARK_HELP_CACHE": "1", "XDG_CACHE_HOME": str(tmp_path), "COLUMNS": "100"}
    produced = _cli("run", "--help", **cache)
    stored = list((tmp_path / "transegpgd-bench").glob("help-run-*.txt"))
    assert produced.returncode == 0 and len(stored) == 1 and stored[0].read_text() == produced.stdout
    assert produced.stdout == _cli("run", "--help", COLUMNS="100").stdout  # the parser's own text
    stored[0].write_text(produced.stdout + "(from the cache)\n")  # a later call prints the stored text
    again = _cli("run", "-h", **cache)
    assert again.returncode == 0 and again.stdout == produced.stdout + "(from the cache)\n"
    # what the text depends on makes a new key: a W&B default, the width
    other = _cli("run", "--help", **cache, WANDB_PROJECT="elsewhere")
    assert other.returncode == 0 and "elsewhere" in other.stdout and "(from the cache)" not in other.stdout
    assert "(from the cache)" not in _cli("run", "--help", **{**cache, "COLUMNS": "120"}).stdout
    # not a bare --help: the parser runs (the config's values in the help), nothing stored or read
    with_config = _cli("run", "--config", "configs/default.yaml", "--help", **cache)
    assert with_config.returncode == 0 and "(from the cache)" not in with_config.stdout
    evaluate = _cli("evaluate", "--help", **cache)
    assert evaluate.returncode == 0 and evaluate.stdout.startswith("usage: benchmark evaluate")


def test_help_key_follows_the_package_source(tmp_path, monkeypatch):
    from benchmark import help_cache

    (tmp_path / "module.py").write_text("A = 1\n")
    monkeypatch.setattr(help_cache, "PACKAGE", tmp_path)
    first = help_cache.help_key("run")
    assert help_cache.help_key("run") == first and help_cache.help_key("evaluate") != first
    (tmp_path / "module.py").write_text("A = 2\n")
    assert help_cache.help_key("run") != first
    assert help_cache.cached_help("run", ["--config", "x.yaml", "--help"], lambda argv: 0) is None


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
