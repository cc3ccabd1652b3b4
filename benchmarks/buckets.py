"""Size buckets on images of mixed sizes: throughput at batch size 1 against ``data.bucket_by_size``.

A VOC-layout folder of ``--images`` images whose native sizes follow the mix of VOC 2012 val (most
500x375, then 375x500, 500x333, 333x500, ...; :data:`SIZE_MIX`) is written with random-weight
checkpoints of the zoo's ``pspnet-r50-voc`` (``benchmarks/realsize.py``; nothing is downloaded), and
``configs/voc/pspnet-r50_transfer.yaml`` runs through ``benchmark run`` twice per repeat, alternated in
fresh processes: ``--data.batch_size 1`` and ``--data.batch_size B --data.bucket_by_size true``, one
attack (``--attack``, ``--steps``) and the source as the only target. Printed: the bucket histogram
(resized size, images, batches of B), per setting the median loop seconds (results.json
``timings.wall_s``) and images/s over the repeats, the speed-up of the bucketed runs, and whether the two
settings wrote the same per-image records (or how far apart they are: another batch size can change
a convolution's summation order, on the CPU too for ResNet-50's layers, and move a count at near-tied
pixels; see docs/how-to/cluster.md, "Images of mixed sizes").

Usage:
    python benchmarks/buckets.py                                  # CPU: 12 images, batch 4, PGD 2 steps
    python benchmarks/buckets.py --device cuda --images 64 --batch 8 --steps 10
    python benchmarks/buckets.py --resize none --scale 0.2 --images 6 --batch 2 --steps 1   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from realsize import write_checkpoints, write_voc  # noqa: E402

# Native (W, H) of VOC 2012 val images in about their proportions (500x375 is the most common size).
SIZE_MIX = ((500, 375), (375, 500), (500, 375), (500, 333), (500, 375), (333, 500),
            (500, 375), (375, 500), (500, 375), (500, 334), (500, 375), (500, 375))
MODEL = "pspnet-r50-voc"


def image_list(count: int, scale: float) -> list[tuple[str, int, int]]:
    """``count`` (name, W, H) records cycling through :data:`SIZE_MIX`, sides multiplied by ``scale``."""
    return [(f"2008_{index:06d}", max(8, round(w * scale)), max(8, round(h * scale)))
            for index, (w, h) in ((i, SIZE_MIX[i % len(SIZE_MIX)]) for i in range(count))]


def bucket_table(root: Path, resize: str, batch: int) -> list[tuple[tuple[int, int], int, int]]:
    """(resized (H, W), images, batches) per bucket, in the sampler's order."""
    from benchmark.data import build_dataset
    from benchmark.lightning.datamodule import size_buckets

    dataset = build_dataset("voc2012", root, resize=resize)
    sizes = [dataset.input_size(i) for i in range(len(dataset))]
    batches = size_buckets(list(range(len(sizes))), sizes, batch)
    per_size = Counter(sizes)
    per_size_batches = Counter(sizes[b[0]] for b in batches)
    return [(size, per_size[size], per_size_batches[size]) for size in dict.fromkeys(sizes)]


def run(root: Path, checkpoints: Path, out: Path, args, batch: int) -> dict:
    bucket = ["--data.bucket_by_size", "true"] if batch > 1 else []
    device = ["--trainer.accelerator", "gpu"] if args.device == "cuda" else ["--trainer.accelerator", "cpu"]
    cmd = [sys.executable, "-m", "benchmark", "run", "--config", "configs/voc/pspnet-r50_transfer.yaml",
           "--data.root", str(root), "--data.resize", args.resize, "--data.batch_size", str(batch), *bucket,
           "--attack.attacks", f"[{args.attack}]", "--attack.steps", str(args.steps), "--model.targets", f"[{MODEL}]",
           "--logger", "none", "--results.quiet", "true", "--progress.refresh_rate", "0",
           "--results.out_dir", str(out), *device]
    env = {**os.environ, "BENCHMARK_CHECKPOINT_DIR": str(checkpoints), "WANDB_MODE": "offline"}
    process = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if process.returncode != 0:
        sys.exit(f"error: batch {batch} run exited {process.returncode}: {process.stderr.strip()[-2000:]}")
    return json.loads((out / "results.json").read_text())


def agreement(one: dict, other: dict) -> str:
    """How far two runs' per-image records and mIoU lie apart: identical, or the count of differing
    records, their largest pixel difference (as a share of the image's valid pixels) and of mIoU."""
    pairs = list(zip(one["images"], other["images"]))
    assert [(a["image"], a["target"], a["condition"]) for a, _ in pairs] == \
        [(b["image"], b["target"], b["condition"]) for _, b in pairs]
    differing = [(a, b) for a, b in pairs if a != b]
    miou = max(abs(a["miou"] - b["miou"]) for a, b in zip(one["metrics"], other["metrics"]))
    if not differing and miou == 0:
        return "identical"
    pixels = max((max(abs(x - y) for field in ("intersection", "predicted") for x, y in zip(a[field], b[field])),
                  sum(a["labelled"])) for a, b in differing)
    return (f"{len(differing)} of {len(pairs)} records differ, by at most {pixels[0]} pixels "
            f"({100 * pixels[0] / max(pixels[1], 1):.3f} % of that image's valid pixels); "
            f"largest mIoU difference {100 * miou:.4f} points")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--batch", type=int, default=4, help="batch size of the bucketed runs")
    parser.add_argument("--attack", default="pgd")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--resize", choices=["mmseg", "none"], default="mmseg",
                        help="mmseg: VOC's test resize (about 683x512 inputs); none: native size")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the native sizes (a smaller smoke run)")
    parser.add_argument("--out", type=Path, default=None, help="work folder, kept (default: a temporary one)")
    args = parser.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="buckets-"))
    try:
        root = write_voc(work / "VOC2012", images=image_list(args.images, args.scale))
        write_checkpoints(work / "checkpoints", [MODEL])
        print(f"{args.images} images, resize={args.resize}, {args.attack} {args.steps} steps, source = target = "
              f"{MODEL} (random weights), device {args.device}, torch threads "
              f"{os.environ.get('OMP_NUM_THREADS', 'default')}")
        print(f"{'input size (HxW)':<18} {'images':>6} {'batches of ' + str(args.batch):>14}")
        for (h, w), images, batches in bucket_table(root, args.resize, args.batch):
            print(f"{f'{h}x{w}':<18} {images:>6} {batches:>14}")
        loops: dict[int, list[float]] = {1: [], args.batch: []}
        results = {}
        for repeat in range(args.repeats):
            for batch in (1, args.batch):
                result = run(root, work / "checkpoints", work / f"run-b{batch}-{repeat}", args, batch)
                loops[batch].append(result["timings"]["wall_s"])
                results[batch] = result
        print(f"{'setting':<28} {'loop s (median)':>16} {'images/s':>9} {'speed-up':>9}")
        base = statistics.median(loops[1])
        for batch, label in ((1, "batch 1"), (args.batch, f"batch {args.batch}, bucket_by_size")):
            loop = statistics.median(loops[batch])
            print(f"{label:<28} {loop:>16.2f} {args.images / loop:>9.3f} {base / loop:>8.2f}x")
        print(f"per-image records of the two settings: {agreement(results[1], results[args.batch])}"
              f" ({args.repeats} repeat(s); loop = results.json timings.wall_s)")
    finally:
        if args.out is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
