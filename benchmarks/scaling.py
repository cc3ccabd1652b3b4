"""DDP scaling of `benchmark run`: images/s with 1 process and with N, per process, and the efficiency.

Runs the same config with ``--trainer.devices 1`` and ``--trainer.devices N --trainer.strategy ddp``
(Lightning DDP; on CPU N processes, on a GPU machine one per GPU), alternately, ``--repeats`` times,
and reads the throughput each run records (results.json ``timings``: images of the split over the
validation loop's wall time; start-up excluded, it is in the ``wall`` column). Efficiency =
images/s with N / (N x images/s with 1). The results of the two must be the same numbers (the shards
are disjoint and every image's generators depend only on its name): the largest mIoU difference is
printed too.

On CPU the machine's cores are shared by the processes: each gets cores // N torch threads
(``OMP_NUM_THREADS``) unless ``--threads`` says otherwise, so the one-process run uses every core and
the efficiency shows what the N-process run loses to communication, sharding and start-up of the
workers, not the cost of oversubscribing the CPU.

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


def run_once(config: str, processes: int, device: str, out: Path, extra: list[str], threads: int | None) -> dict:
    accelerator = "gpu" if device.startswith("cuda") else "cpu"
    cmd = [sys.executable, "-m", "benchmark", "run", "--config", config, "--logger", "none",
           "--results.out_dir", str(out), "--results.quiet", "true", "--progress.refresh_rate", "0",
           "--trainer.accelerator", accelerator, "--trainer.devices", str(processes), *extra]
    if processes > 1:
        cmd += ["--trainer.strategy", "ddp"]
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    if accelerator == "cpu":
        env["OMP_NUM_THREADS"] = str(threads or max(1, (os.cpu_count() or 1) // processes))
    start = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.monotonic() - start
    if done.returncode != 0:
        sys.exit(f"error: {processes}-process run exited {done.returncode}: "
                 f"{(done.stderr.strip().splitlines() or ['?'])[-1]}")
    result = json.loads((out / "results.json").read_text())
    return {"wall": wall, "loop": result["timings"]["wall_s"], "images_per_s": result["timings"]["images_per_s"],
            "images": len(result["images"]),
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

    runs: dict[int, list[dict]] = {1: [], args.processes: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            order = [1, args.processes] if r % 2 == 0 else [args.processes, 1]
            for n in order:
                runs[n].append(run_once(args.config, n, args.device, Path(tmp) / f"run-{n}-{r}", extra,
                                        args.threads))

    one = statistics.median(run["images_per_s"] for run in runs[1])
    print(f"config={args.config} device={args.device} images={runs[1][0]['images']} repeats={args.repeats} "
          f"cpu cores={os.cpu_count()}")
    print(f"{'processes':>9} {'wall s':>8} {'loop s':>8} {'images/s':>9} {'per process':>12} {'efficiency':>11}")
    for n, values in runs.items():
        rate = statistics.median(v["images_per_s"] for v in values)
        print(f"{n:>9} {statistics.median(v['wall'] for v in values):>8.2f} "
              f"{statistics.median(v['loop'] for v in values):>8.2f} {rate:>9.3f} {rate / n:>12.3f} "
              f"{rate / (n * one):>11.3f}")
    reference = runs[1][0]["miou"]
    difference = max(abs(run["miou"][key] - value) for values in runs.values() for run in values
                     for key, value in reference.items())
    print(f"largest |mIoU difference| between any two runs: {difference:.2e}")


if __name__ == "__main__":
    main()
