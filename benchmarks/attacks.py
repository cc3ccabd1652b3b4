"""Seconds per attack step for every registered attack, and the ratio to one bare source step.

A "bare step" is one forward pass of the source plus one backward pass to the input
(``torch.autograd.grad(logits.sum(), x)``). An attack step should cost about the same: the target is
a ratio <= 1.10 for every attack except DI (up to two forward passes on a larger canvas) and
ensembles (one pass per member). Times are medians over ``--repeats`` runs of ``--steps`` steps, after
one warm-up run; each attack run is paired with a bare run next to it and the ratio column is the
median of the paired ratios. One-off work (the clean forward TranSegPGD needs) is spread over the steps.

Usage:
    python benchmarks/attacks.py                         # small pure-torch conv net on CPU
    python benchmarks/attacks.py --device cuda --amp bf16
    python benchmarks/attacks.py --mmseg-config configs/models/xyz.py --size 512 512
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from benchmark.attacks import ATTACKS, build_attack  # noqa: E402
from benchmark.attacks.registry import LISTED_COMBINATIONS  # noqa: E402

COMBINATIONS = list(LISTED_COMBINATIONS)


class SmallSegNet(nn.Module):
    """3x3 convs 3 -> 32 -> 32 -> K with ReLUs; logits at input resolution."""

    def __init__(self, classes: int = 21, width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, classes, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CLOCK = time.perf_counter


def _seconds(fn, steps: int, device: torch.device) -> float:
    _sync(device)
    start = CLOCK()
    fn()
    _sync(device)
    return (CLOCK() - start) / steps


def _paired(fn, bare, steps: int, repeats: int, device: torch.device) -> tuple[float, float]:
    """Median seconds per step of ``fn`` and median ratio to ``bare``, timed in alternating pairs.

    Pairing each attack run with a bare run right next to it keeps the ratio honest on a machine
    whose load drifts (shared CPUs).
    """
    fn()  # warm-up
    times, ratios = [], []
    for r in range(repeats):
        if r % 2:
            t_attack, t_bare = _seconds(fn, steps, device), _seconds(bare, steps, device)
        else:
            t_bare, t_attack = _seconds(bare, steps, device), _seconds(fn, steps, device)
        times.append(t_attack)
        ratios.append(t_attack / t_bare)
    return statistics.median(times), statistics.median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--amp", choices=["none", "bf16"], default="none")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--size", type=int, nargs=2, default=[128, 128], metavar=("H", "W"))
    parser.add_argument("--classes", type=int, default=21, help="classes of the built-in net")
    parser.add_argument("--mmseg-config", default=None, help="build the source with benchmark.models")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument(
        "--clock", choices=["wall", "process"], default="wall",
        help="process = CPU time of this process; steadier than wall time on a shared, loaded CPU",
    )
    parser.add_argument("--only", nargs="*", default=None, help="attack names to time (default: all)")
    args = parser.parse_args()

    global CLOCK
    CLOCK = time.process_time if args.clock == "process" else time.perf_counter
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.mmseg_config:
        from benchmark.models import build_segmentor  # heavy; only on request

        model = build_segmentor(args.mmseg_config, device=str(device))
        second = None
    else:
        gen = torch.Generator().manual_seed(0)
        model = SmallSegNet(args.classes).to(device).eval()
        second = SmallSegNet(args.classes).to(device).eval()
        with torch.no_grad():
            for p in list(model.parameters()) + list(second.parameters()):
                p.copy_((torch.randn(p.shape, generator=gen) * 0.1).to(device))
    for p in model.parameters():
        p.requires_grad_(False)

    h, w = args.size
    gen = torch.Generator().manual_seed(1)
    images = torch.rand(args.batch, 3, h, w, generator=gen).to(device)
    with torch.no_grad():
        classes = model(images).shape[1]
    labels = torch.randint(0, classes, (args.batch, h, w), generator=gen).to(device)
    labels[:, :8, :8] = 255
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp == "bf16")

    def bare() -> None:
        for _ in range(args.steps):
            x = images.detach().requires_grad_(True)
            with amp:
                logits = model(x)
            torch.autograd.grad(logits.float().sum(), x)

    cases = [(name, model, {}) for name in list(ATTACKS) + COMBINATIONS]
    if second is not None:
        cases.append(("transegpgd [2-model logits ensemble]", [model, second], {"ensemble": "logits"}))
        cases.append(("transegpgd [2-model loss ensemble]", [model, second], {"ensemble": "loss"}))
    if args.only:
        cases = [c for c in cases if c[0].split(" ")[0] in args.only]

    bare()  # warm-up
    base = statistics.median(_seconds(bare, args.steps, device) for _ in range(args.repeats))
    print(f"device={device} amp={args.amp} batch={args.batch} size={h}x{w} classes={classes} "
          f"steps={args.steps} repeats={args.repeats} threads={torch.get_num_threads()} clock={args.clock}")
    print(f"{'attack':<40} {'s/step':>10} {'ratio':>7}  note")
    print(f"{'bare forward + input backward':<40} {base:>10.5f} {1.0:>7.3f}")
    for label, source, extra in cases:
        name = label.split(" ")[0]
        steps = 1 if name == "fgsm" else args.steps
        attack = build_attack(name, steps=steps, **extra) if name != "fgsm" else build_attack(name, **extra)
        gens = [torch.Generator().manual_seed(i) for i in range(args.batch)]

        def run(attack=attack, source=source, gens=gens, steps=steps) -> None:
            reps = args.steps // steps  # FGSM: as many one-step calls as the others have steps
            for _ in range(reps):
                with amp:
                    attack(source, images, labels, generator=gens)

        seconds, ratio = _paired(run, bare, args.steps, args.repeats, device)
        exempt = "di" in name.split("+")[1:] or name == "difgsm" or isinstance(source, list)
        note = "exempt (DI / ensemble)" if exempt else ("ok" if ratio <= 1.10 else "ABOVE 1.10")
        print(f"{label:<40} {seconds:>10.5f} {ratio:>7.3f}  {note}")


if __name__ == "__main__":
    main()
