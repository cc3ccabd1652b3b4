"""``benchmark finalize OUT_DIR``: the result of a run whose journal holds every image (one killed while
writing its results), attacking nothing."""

from __future__ import annotations

import sys
from pathlib import Path

from benchmark.lightning.cli import BenchmarkCLI, EvaluateCLI, run_cli
from benchmark.lightning.error_lines import one_line
from benchmark.results.journal import journal_dir


class FinalizeCLI(BenchmarkCLI):
    """``benchmark finalize``: the result of a run whose journal holds every image, attacking nothing."""

    prog = "benchmark finalize"
    finalize = True


class FinalizeEvaluateCLI(EvaluateCLI):
    """``benchmark finalize`` of a ``benchmark evaluate`` run."""

    prog = "benchmark finalize"
    finalize = True


FINALIZE_USAGE = """usage: benchmark finalize OUT_DIR [--takeover] [--debug] [benchmark run options]

Write the result of the run in OUT_DIR from its journal, when the journal holds every image (a run
killed while writing its results, e.g. by a scheduler's time limit). The run's own config.yaml is read,
the models are built on the CPU (the result records the journal's numerics) and nothing is attacked.
Options override the run's, e.g. --data.root when the data moved; --takeover takes the out_dir lock of
a run that is gone."""


def finalize_cli(argv: list[str]) -> int:
    """``benchmark finalize OUT_DIR [--takeover] [--debug] [options]``: write the result of the run in
    OUT_DIR from its journal when the journal holds every image (a run killed while writing its
    results, say by a scheduler's time limit). The run's own config.yaml is read; the models are
    built on the CPU (the journal's numerics are the result's), nothing is attacked. Options override
    the run's (e.g. ``--data.root`` when the data moved)."""
    import yaml

    if not argv or argv[0].startswith("-"):
        asked = argv[:1] in (["-h"], ["--help"])
        print(FINALIZE_USAGE, file=sys.stdout if asked else sys.stderr)
        return 0 if asked else 2
    out, rest = Path(argv[0]), list(argv[1:])
    config = out / "config.yaml"
    if not config.is_file():
        print(f"error: {out} holds no config.yaml: not the out_dir of a benchmark run", file=sys.stderr)
        return 2
    if not any(journal_dir(out).glob("rank-*.jsonl")):
        done = " (its results.json is the result)" if (out / "results.json").is_file() else ""
        print(f"error: {out} holds no journal: nothing to finalize{done}", file=sys.stderr)
        return 2
    try:
        evaluate = "adv" in (yaml.safe_load(config.read_text()) or {})
    except (OSError, yaml.YAMLError) as err:
        print(f"error: {config}: {one_line(err)}", file=sys.stderr)
        return 2
    args = ["--config", str(config), "--results.out_dir", str(out), "--trainer.accelerator", "cpu",
            "--trainer.devices", "1", "--trainer.num_nodes", "1", "--trainer.strategy", "auto", *rest]
    return run_cli(args, FinalizeEvaluateCLI if evaluate else FinalizeCLI)
