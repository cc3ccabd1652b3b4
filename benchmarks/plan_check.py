"""The check of `benchmark plan`'s estimate: the calibrated plan, then the real `benchmark run` of the same job.

Runs ``benchmark plan --config C [overrides] --json FILE`` (calibrated on the run's device) and then
``benchmark run --config C [overrides] --logger none`` into a fresh out_dir, in fresh processes, and
prints the estimated wall time of the configured number of processes against the measured wall time of
the run (from the command to its exit) and their ratio; the target is within +-25 %. A second row
compares the estimate's slowest rank with the run's validation loop (results.json ``timings.wall_s``),
so a miss can be told apart between the fixed costs and the per-image work. With ``--repeats R`` the
pair runs R times and the medians are reported (the CPUs of a shared machine are noisy).

Any option this script does not know is passed to both commands (``--data.limit 8``, ``--attack.steps 5``).
``--threads 1`` runs both with one torch thread: on a shared CPU whose other core is busy, two threads
wait for each other at every operation and timings swing by 10x; one thread is steadier.

Usage:
    python benchmarks/plan_check.py                       # configs/default.yaml, 1 repeat
    python benchmarks/plan_check.py --repeats 3
    python benchmarks/plan_check.py --config configs/default.yaml --data.limit 16 --attack.steps 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


THREADS: int | None = None  # --threads: OMP_NUM_THREADS of both commands


def _benchmark(*args: str) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    if THREADS:
        env["OMP_NUM_THREADS"] = str(THREADS)
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "benchmark", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT)
    seconds = time.monotonic() - start
    if done.returncode != 0:
        sys.exit(f"error: benchmark {args[0]} exited {done.returncode}: "
                 f"{(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return seconds, done


def check_once(config: str, extra: list[str], work: Path, index: int) -> dict:
    plan_file, out_dir = work / f"plan-{index}.json", work / f"run-{index}"
    _, planned = _benchmark("plan", "--config", config, *extra, "--json", str(plan_file))
    plan = json.loads(plan_file.read_text())
    row = next(r for r in plan["calibration"]["estimate"] if r["processes"] == plan["processes"])
    wall, _ = _benchmark("run", "--config", config, *extra, "--logger", "none", "--results.out_dir", str(out_dir),
                         "--results.quiet", "true", "--progress.refresh_rate", "0")
    loop = json.loads((out_dir / "results.json").read_text())["timings"]["wall_s"]
    return {"estimate": row["wall_s"], "measured": wall, "rank_estimate": row["slowest_rank_s"], "loop": loop,
            "images": plan["dataset"]["images"], "processes": plan["processes"],
            "fixed": plan["calibration"]["fixed"], "report": planned.stdout}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--repeats", type=int, default=1, help="plan + run pairs (medians reported)")
    parser.add_argument("--work", default=None, help="folder for the plans and the runs (default: a temporary one)")
    parser.add_argument("--show-plan", action="store_true", help="print the first plan's report")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads of both commands (OMP_NUM_THREADS; default: torch's). On a shared, "
                             "busy CPU one thread per process times far more steadily")
    args, extra = parser.parse_known_args()
    global THREADS
    THREADS = args.threads
    with tempfile.TemporaryDirectory(prefix="plan-check-") as scratch:
        work = Path(args.work or scratch)
        work.mkdir(parents=True, exist_ok=True)
        checks = []
        for index in range(args.repeats):
            checks.append(check_once(args.config, extra, work, index))
            c = checks[-1]
            print(f"pair {index + 1}/{args.repeats}: estimate {c['estimate']:.1f} s, measured {c['measured']:.1f} s "
                  f"(ratio {c['estimate'] / c['measured']:.2f}); slowest rank {c['rank_estimate']:.1f} s vs "
                  f"validation loop {c['loop']:.1f} s", flush=True)
    if args.show_plan:
        print(checks[0]["report"])
    first = checks[0]
    fixed = first["fixed"]
    threads = f", OMP_NUM_THREADS={args.threads}" if args.threads else ""
    print(f"\n{args.config} {' '.join(extra)}: {first['images']} images, {first['processes']} process(es){threads}; "
          f"fixed costs of the first plan: start-up {fixed['startup_s']:.1f} s, model building "
          f"{fixed['build_s']:.1f} s, preflight {fixed['preflight_s']:.1f} s")
    print(f"{'':<8} {'estimate s':>10} {'measured s':>10} {'ratio':>6}  (wall: command to exit)")
    for label, key_e, key_m in (("median", "estimate", "measured"), ("loop", "rank_estimate", "loop")):
        estimate = statistics.median(c[key_e] for c in checks)
        measured = statistics.median(c[key_m] for c in checks)
        ratios = [c[key_e] / c[key_m] for c in checks]
        spread = f"  ratios {min(ratios):.2f}-{max(ratios):.2f}" if len(ratios) > 1 else ""
        print(f"{label:<8} {estimate:>10.1f} {measured:>10.1f} {estimate / measured:>6.2f}{spread}")
    ratio = statistics.median(c["estimate"] / c["measured"] for c in checks)
    print(f"target: wall estimate within +-25 % of the measured wall time: "
          f"{'met' if 0.75 <= ratio <= 1.25 else 'MISSED'} (median of the ratios {ratio:.2f})")


if __name__ == "__main__":
    main()
