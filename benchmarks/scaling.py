"""DDP scaling of `benchmark run`: images/s with 1 process and with N, per process, and the efficiency.

Runs the same config with ``--trainer.devices 1`` and ``--trainer.devices N --trainer.strategy ddp``
(Lightning DDP; on CPU N processes, on a GPU machine one per GPU), alternately, ``--repeats`` times,
and reads the throughput each run records (results.json ``timings``: images of the split over the
validation loop's wall time; start-up excluded, it is in the ``wall`` column). Efficiency =
images/s with N / (N x images/s with 1). The results of the two must be the same numbers (the shards
are disjoint and every image's generators depend only on its name): the largest mIoU difference is
printed too.

Efficiency compares processes with the same resources: on a GPU machine one GPU each; on CPU, where
the processes share the machine's cores, T = cores // N torch threads each (``OMP_NUM_THREADS``;
``--threads`` sets T), in the one-process run too. It then shows what N processes lose to
sharding, communication and the workers' start-up, not how torch's threads scale. A third row, one
process with every core, is the run a user of a small machine compares with (``speed-up`` column).

Usage:
    python benchmarks/scaling.py                                  # 2 CPU processes, configs/default.yaml
    python benchmarks/scaling.py --device cuda --processes 8      # a GPU machine
    python benchmarks/scaling.py --limit 16 --steps 5 --repeats 1 # a quick look
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


def run_once(config: str, processes: int, device: str, out: Path, extra: list[str], threads: int) -> dict:
    accelerator = "gpu" if device.startswith("cuda") else "cpu"
    cmd = [sys.executable, "-m", "benchmark", "run", "--config", config, "--logger", "none",
           "--results.out_dir", str(out), "--results.quiet", "true", "--progress.refresh_rate", "0",
           "--trainer.accelerator", accelerator, "--trainer.devices", str(processes), *extra]
    if processes > 1:
        cmd += ["--trainer.strategy", "ddp"]
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    if accelerator == "cpu":
        env["OMP_NUM_THREADS"] = str(threads)
    start = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.monotonic() - start
    if done.returncode != 0:
        sys.exit(f"error: {processes}-process run exited {done.returncode}: "
                 f"{(done.stderr.strip().splitlines() or ['?'])[-1]}")
    result = json.loads((out / "results.json").read_text())
    return {"wall": wall, "loop": result["timings"]["wall_s"], "images_per_s": result["timings"]["images_per_s"],
            "images": result["dataset"]["num_images"],
            "miou": {f"{m['target']}/{m['condition']}": m["miou"] for m in result["metrics"]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--processes", type=int, default=2, help="N (default 2)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="--data.limit (default: the whole split)")
    parser.add_argument("--steps", type=int, default=None, help="--attack.steps (default: the config's)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per process (default cores // N)")
    args = parser.parse_args()
    if args.processes < 2:
        parser.error("--processes must be at least 2")
    extra = [*(["--data.limit", str(args.limit)] if args.limit else []),
             *(["--attack.steps", str(args.steps)] if args.steps else [])]

    cores = os.cpu_count() or 1
    threads = args.threads or max(1, cores // args.processes)
    cases = [("1", 1, threads), (str(args.processes), args.processes, threads)]
    if not args.device.startswith("cuda") and threads * args.processes <= cores and threads < cores:
        cases.append((f"1 (all {cores} cores)", 1, cores))
    runs: dict[str, list[dict]] = {label: [] for label, _, _ in cases}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for label, n, t in cases if r % 2 == 0 else cases[::-1]:
                runs[label].append(run_once(args.config, n, args.device, Path(tmp) / f"run-{n}-{t}-{r}", extra, t))

    def median(label: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[label])

    one = median("1", "images_per_s")
    reference = cases[2][0] if len(cases) == 3 else "1"  # what the speed-up column divides by
    print(f"config={args.config} device={args.device} images={runs['1'][0]['images']} repeats={args.repeats} "
          f"cpu cores={cores}" + ("" if args.device.startswith("cuda") else f" threads per process={threads}"))
    print(f"{'processes':<16} {'wall s':>8} {'loop s':>8} {'images/s':>9} {'per process':>12} {'efficiency':>11} "
          f"{'speed-up':>9}")
    for label, n, t in cases:
        rate = median(label, "images_per_s")
        efficiency = f"{rate / (n * one):>11.3f}" if t == threads else f"{'-':>11}"
        print(f"{label:<16} {median(label, 'wall'):>8.2f} {median(label, 'loop'):>8.2f} {rate:>9.3f} "
              f"{rate / n:>12.3f} {efficiency} {rate / median(reference, 'images_per_s'):>8.2f}x")
    same = [run for label, _, t in cases if t == threads for run in runs[label]]
    difference = max(abs(run["miou"][key] - value) for run in same for key, value in same[0]["miou"].items())
    print(f"efficiency = images/s of N processes / (N x images/s of 1 process), {threads} thread(s) each; "
          f"speed-up: over the row '{reference}'")
    print(f"largest |mIoU difference| between runs with {threads} thread(s) per process: {difference:.2e} "
          "(batches of other images can move near-tied pixels)")


if __name__ == "__main__":
    main()
