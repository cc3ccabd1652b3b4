"""Command line: ``benchmark <command>``.

``benchmark run`` is the Lightning job (see :mod:`benchmark.lightning.cli`); the other commands are
small tools around it. Every :class:`benchmark.errors.BenchmarkError` becomes one line on stderr and
exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmark.errors import BenchmarkError

COMMANDS: dict[str, tuple[str, Callable[[list[str]], int]]] = {}


def command(name: str, help_text: str):
    def register(function: Callable[[list[str]], int]):
        if name in COMMANDS:
            raise RuntimeError(f"duplicate command {name!r}")
        COMMANDS[name] = (help_text, function)
        return function

    return register


@command("run", "run a transfer benchmark experiment (Lightning; --help for options)")
def _run(argv: list[str]) -> int:
    return _lightning_command("run", argv)


@command("evaluate", "evaluate target models on a saved adversarial set (results.save_adv), without attacking")
def _evaluate(argv: list[str]) -> int:
    return _lightning_command("evaluate", argv)


@command("finalize", "write the result of a run whose journal holds every image (one killed while writing "
                     "its results), attacking nothing")
def _finalize(argv: list[str]) -> int:
    from benchmark.lightning.finalize import finalize_cli

    return finalize_cli(argv)


@command("plan", "the cost of a job before any attack: images per rank, passes, input sizes, time and memory")
def _plan(argv: list[str]) -> int:
    return _lightning_command("plan", argv)


def _lightning_command(name: str, argv: list[str]) -> int:
    """``run`` / ``evaluate`` / ``plan``: a bare ``--help`` from :mod:`benchmark.help_cache` (no Lightning import)."""
    from benchmark.help_cache import cached_help

    def produce(args: list[str]) -> int:
        if name == "plan":
            from benchmark.lightning.plan import plan_cli

            return plan_cli(args)
        from benchmark.lightning import cli

        return cli.run_cli(args) if name == "run" else cli.evaluate_cli(args)

    status = cached_help(name, argv, produce)
    return produce(argv) if status is None else status


@command("summarize", "one CSV / Markdown summary across runs; runs of the same images joined into one matrix, "
                      "the shards of a job array into the whole job")
def _summarize(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="benchmark summarize", description=COMMANDS["summarize"][0])
    parser.add_argument("results", nargs="+", help="RUN_DIR or RUN_DIR/results.json (benchmark run / evaluate)")
    parser.add_argument("--out", required=True, help="folder for summary.csv and summary.md (and the joined run)")
    parser.add_argument("--no-join", action="store_true", help="only the cross-run summary, even if the runs join")
    args = parser.parse_args(argv)
    from benchmark.errors import ResultError
    from benchmark.results import join_results
    from benchmark.results.io import read_result
    from benchmark.results.join import summary_rows

    paths = [Path(p) / "results.json" if Path(p).is_dir() else Path(p) for p in args.results]
    out = Path(args.out)
    for path in paths:  # its results would be moved aside (or overwritten) by the summary
        if path.parent.resolve() == out.resolve():
            raise ResultError(f"--out {out} is the folder of the summarized run {path}; choose another --out")
    results = [read_result(path) for path in paths]
    if any(result.dataset.shard is not None for result in results):
        return _join_shards(results, paths, out)
    rows = summary_rows(results, [str(p.parent) for p in paths])
    joined, not_joined = None, None
    if not args.no_join and len(results) >= 2:
        try:
            joined = join_results(results, [str(p) for p in paths])
        except ResultError as err:
            not_joined = err
    _write_summary(rows, out)
    print(f"summary of {len(results)} runs: {out / 'summary.csv'}, {out / 'summary.md'}")
    if not_joined is not None:
        print(f"note: not joined into one matrix: {not_joined}")
    if joined is not None:
        _write_joined(joined, out)
    return 0


def _join_shards(results: list, paths: list[Path], out: Path) -> int:
    """``summarize`` of job-array shards: the whole job's result (refused in one line when incomplete)."""
    from benchmark.results.join import join_shards, summary_rows

    joined = join_shards(results, [str(p) for p in paths])
    _write_summary(summary_rows([joined], [str(out)]), out)
    print(f"joined {len(results)} shards into the whole job: {joined.dataset.num_images} images")
    _write_joined(joined, out)
    return 0


def _write_joined(joined, out: Path) -> None:
    from benchmark.results import write_result
    from benchmark.results.report import write_reports

    write_result(out / "results.json", joined)
    table, heatmaps = write_reports(joined, out)
    print(table)
    print(f"joined: {', '.join(str(p) for p in [out / 'results.json', out / 'results.md', *heatmaps])}")


def _write_summary(rows: list[dict], out: Path) -> None:
    """The first write of ``summarize`` into ``out``: move every earlier output of ``summarize`` or of a
    run there into ``out/replaced-<UTC time>/`` (a reader must never take an earlier join for this
    call's), then write summary.csv and summary.md."""
    import csv

    from benchmark.results.join import SUMMARY_COLUMNS
    from benchmark.results.outdir import RESULT_FILES, move_aside
    from benchmark.results.report import pct

    out.mkdir(parents=True, exist_ok=True)
    moved = move_aside(out, (*RESULT_FILES, "summary.csv", "summary.md"))
    if moved is not None:
        print(f"note: moved the earlier results and summary in {out} to {moved}", file=sys.stderr)
    with open(out / "summary.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_COLUMNS)
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    lines = ["| run | source | target | condition | mIoU [interval] | mAcc | aAcc | success |",
             "|---|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        wb = " (white-box)" if r["white_box"] is True else ""
        lines.append(f"| {r['run']} | {r['source']} | {r['target']}{wb} | {r['condition']} | {pct(r['miou'])} "
                     f"[{pct(r['miou_ci_low'])}, {pct(r['miou_ci_high'])}] | {pct(r['macc'])} | {pct(r['aacc'])} | "
                     f"{pct(r['success_rate'])} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")


@command("attacks", "list every base attack and modifier: paper, defaults, passes per step, origin (built-in or "
                    "plugin)")
def _attacks(argv: list[str]) -> int:
    from benchmark.attack_tools import attacks_command

    return attacks_command(argv)


@command("check-attack", "run the invariants every built-in attack holds (eps-ball, RNG, determinism, batch, "
                         "ignored pixels, passes) on an attack, a plugin's included")
def _check_attack(argv: list[str]) -> int:
    from benchmark.attack_tools import check_attack_command

    return check_attack_command(argv)


@command("models", "list the model zoo and whether each checkpoint is present")
def _models(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="benchmark models", description=COMMANDS["models"][0])
    parser.add_argument("--dataset", help="only models trained on this dataset")
    parser.add_argument("--check", action="store_true",
                        help="compare the official entries with mmseg's metafiles; exit 1 on any difference")
    parser.add_argument("--from-metafile", metavar="CONFIG", dest="config",
                        help="print a zoo entry for an mmseg config (e.g. pspnet/pspnet_r50-d8_4xb4-160k_ade20k-512x512.py)")
    parser.add_argument("--layers", metavar="NAME",
                        help="list the layers of zoo model NAME (names for a feature attack's layer), with "
                             "module types and output shapes; runs without its checkpoint")
    parser.add_argument("--size", metavar=("H", "W"), type=int, nargs=2, default=(256, 256),
                        help="image size of the --layers forward pass (default 256 256)")
    args = parser.parse_args(argv)
    from benchmark.models.zoo import load_zoo

    if args.layers:
        return _print_layers(args.layers, tuple(args.size))
    if args.check or args.config:
        from benchmark.models import metafiles

        if args.config:
            import yaml

            name = args.config.rsplit("/", 1)[-1].removesuffix(".py")
            print(yaml.safe_dump({name: metafiles.entry_from_metafile(args.config)}, sort_keys=False,
                                 default_flow_style=None), end="")
            return 0
        problems = metafiles.zoo_drift(load_zoo().values())
        for problem in problems:
            print(problem)
        official = sum(1 for entry in load_zoo().values() if entry.url and entry.config)
        print(f"{official} official entries checked against mmseg's metafiles: {len(problems)} differences")
        return 1 if problems else 0
    rows = [("name", "dataset", "published mIoU", "checkpoint", "config")]
    for entry in load_zoo().values():
        if args.dataset and entry.dataset != args.dataset:
            continue
        miou = entry.published_miou if entry.published_miou is not None else entry.clean_miou
        present = "none" if entry.checkpoint_path is None else \
            "present" if entry.checkpoint_path.is_file() else "missing"
        rows.append((entry.name, entry.dataset, "-" if miou is None else f"{100 * miou:.2f}", present,
                     entry.recorded_config))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def _print_layers(name: str, size: tuple[int, int]) -> int:
    from benchmark.models import build_zoo_model

    model = build_zoo_model(name, mode="whole", weights=False)
    rows = [("layer", "module", f"output for a 1x3x{size[0]}x{size[1]} image")]
    rows += model.layer_table(size)
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for row in rows:
        print(f"{row[0].ljust(widths[0])}  {row[1].ljust(widths[1])}  {row[2]}")
    print(f"{name}: default feature layer {model.default_feature_layer}; NAME[i] selects element i of a "
          "module returning a list (e.g. backbone[2]); '-': not called by the forward pass")
    return 0


@command("fetch-checkpoint", "download a zoo checkpoint, verify its sha256 and store it atomically")
def _fetch(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="benchmark fetch-checkpoint", description=COMMANDS["fetch-checkpoint"][0])
    parser.add_argument("name", help="zoo model name (see `benchmark models`)")
    args = parser.parse_args(argv)
    from benchmark.models.fetch import fetch_checkpoint

    path, digest = fetch_checkpoint(args.name, progress=_progress_printer(args.name))
    print(f"stored {path} (sha256 {digest})")
    return 0


def _progress_printer(label: str):
    """Download progress on stderr: one rewritten line on a terminal, a line per 10 % otherwise."""
    tty = sys.stderr.isatty()
    state = {"shown": -1}

    def show(done: int, total: int | None) -> None:
        percent = int(100 * done / total) if total else None
        step = percent // 10 if percent is not None else done >> 26  # every 10 %, or every 64 MiB
        if not tty and step == state["shown"]:
            return
        state["shown"] = step
        size = f"{done / 1e6:.1f}" + (f" / {total / 1e6:.1f} MB ({percent}%)" if total else " MB")
        end = "" if tty and done != total else "\n"
        print(f"\r{label}: {size}" if tty else f"{label}: {size}", end=end, file=sys.stderr, flush=True)

    return show


@command("convert-checkpoint", "rewrite a checkpoint's weights as .safetensors, its metadata as JSON beside it")
def _convert(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="benchmark convert-checkpoint", description=COMMANDS["convert-checkpoint"][0])
    parser.add_argument("source", help="checkpoint file (.pth of mmengine / mmcv / a bare or DDP state dict)")
    parser.add_argument("target", help="OUT.safetensors (the metadata goes to OUT.json)")
    args = parser.parse_args(argv)
    from benchmark.models.convert import convert_checkpoint

    target, json_path, count = convert_checkpoint(args.source, args.target)
    print(f"wrote {target} ({count} tensors) and {json_path}")
    return 0


@command("train-default", "train the embedded default models on the generated dataset (CPU, minutes)")
def _train_default(argv: list[str]) -> int:
    from benchmark.tools.train_default import main as train_main

    return train_main(argv)


@command("submit", "validate a results.json and add its entries to the leaderboard")
def _submit(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="benchmark submit", description=COMMANDS["submit"][0])
    parser.add_argument("results", help="RUN_DIR/results.json")
    parser.add_argument("--leaderboard", default="leaderboard", help="leaderboard root (default: leaderboard)")
    for name, text in (("paper", "title or URL of the paper"), ("authors", "the method's authors"),
                       ("venue", "where it was published"), ("date", "publication date, YYYY[-MM[-DD]]"),
                       ("code", "URL of the method's code")):
        parser.add_argument(f"--{name}", default=None, help=f"{text}, shown on the leaderboard (optional)")
    args = parser.parse_args(argv)
    from benchmark.results import submit
    from benchmark.results.entry import EntryMetadata

    fields = {k: getattr(args, k) for k in ("paper", "authors", "venue", "date", "code")}
    metadata = EntryMetadata(**fields) if any(fields.values()) else None
    for path in submit(args.results, args.leaderboard, metadata):
        print(f"added {path}")
    return 0


@command("leaderboard", "leaderboard tools: `benchmark leaderboard build` regenerates the pages")
def _leaderboard(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="benchmark leaderboard", description=COMMANDS["leaderboard"][0])
    parser.add_argument("action", choices=["build"])
    parser.add_argument("--root", default="leaderboard", help="leaderboard root holding entries/")
    parser.add_argument("--out", default=None, help="output folder (default: ROOT)")
    parser.add_argument("--wandb-project", default=None, help="also log the tables to this W&B project")
    parser.add_argument("--wandb-mode", choices=["offline", "online"], default="offline")
    args = parser.parse_args(argv)
    from benchmark.results import build, leaderboard_tables, log_to_wandb

    for path in build(args.root, args.out or args.root):
        print(f"wrote {path}")
    if args.wandb_project:
        run_dir = log_to_wandb(leaderboard_tables(args.root), args.wandb_project, mode=args.wandb_mode)
        print(f"logged the leaderboard tables to W&B ({args.wandb_mode}): {run_dir}")
    return 0


@command("verify", "re-run a leaderboard entry on its first K images and compare the numbers")
def _verify(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="benchmark verify", description=COMMANDS["verify"][0])
    parser.add_argument("entry", help="leaderboard/entries/.../<attack>-<hash>.json")
    parser.add_argument("--images", type=int, default=8, help="re-run the first K images (default 8)")
    parser.add_argument("--data-root", default=None, help="dataset folder (default: the shipped configs' root)")
    parser.add_argument("--tolerance", type=float, default=None,
                        help="allowed count difference per image, fraction of its valid pixels (default: 0 when "
                             "the re-run's numerics match the entry's, else 0.01)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the batch size the entry records")
    args = parser.parse_args(argv)
    from benchmark.lightning.verify import verify

    report = verify(args.entry, images=args.images, data_root=args.data_root, tolerance=args.tolerance,
                    batch_size=args.batch_size)
    for problem in report.problems:
        print(f"MISMATCH {problem}")
    verdict = "agrees" if report.ok else "DOES NOT agree"
    print(f"{report.entry}: re-run of {report.images} images {verdict} with the entry "
          f"(tolerance {report.tolerance:g} of valid pixels per image; {report.numerics})")
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--version"]:
        import benchmark

        print(f"transegpgd-bench {benchmark.__version__}")
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: benchmark <command> [options]   (benchmark --version; benchmark <command> --help)\n\ncommands:")
        for name, (help_text, _) in COMMANDS.items():
            print(f"  {name:<18} {help_text}")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        return COMMANDS[name][1](rest)
    except BenchmarkError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
