"""Seconds per attack step for every registered attack, its source passes per step, and the ratio to
one bare source step.

A "bare step" is one forward pass of the source plus one backward pass to the input
(``torch.autograd.grad(logits.sum(), x)``). The source is wrapped in a counter, so the table shows how
many passes an attack step makes: ``grad`` = forward passes with autograd on (each followed by a
backward), ``eval`` = forward passes without autograd (clean logits once per run, the per-step
accuracy check of ``return_iterate="best"``, SEA's choice of the worst member), both per image and
per step. An attack that averages over copies (SI, Admix, SSA, BSR) or probes neighbours (VT) pays one
grad pass per copy or neighbour by design. ``per pass`` = seconds per step / (grad x bare step + eval x
eval forward),
the cost of the step beyond the passes it counts, is the number the target applies to: <= 1.10 for
every attack except DI and DS (their canvases are larger, ~E[scale^2] of a pass). The eval forward
(no autograd) is timed like the bare step. FSPGD's grad pass stops at its feature layer, so it costs
less than a whole pass.

Times are medians over ``--repeats`` runs of ``--steps`` steps, after one warm-up run; each attack
run is paired with a bare run next to it and the ratio column is the median of the paired ratios.
One-off work (the clean forward of TranSegPGD, DAG, FSPGD and targeted attacks, the final accuracy
check of ``return_iterate="best"``) is spread over the steps and counted in ``eval``.

``--memory`` adds the peak memory of each attack's run above what is held before it (model, images),
and its ratio to the bare step's (target <= 1.2; DI / DS canvases and ensembles exempt). CPU: peak
resident set size (Linux ``VmHWM``, reset through ``/proc/self/clear_refs`` before each measurement;
glibc's mmap threshold is fixed so that freed tensors leave the resident set); CUDA:
``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``.

Usage:
    python benchmarks/attacks.py                         # small pure-torch conv net on CPU
    python benchmarks/attacks.py --memory --only pgd segpgd transegpgd transegpgd+mi
    python benchmarks/attacks.py --device cuda --amp bf16
    python benchmarks/attacks.py --mmseg-config pspnet_r50-d8_4xb4-20k_voc12aug-512x512.py --size 256 256
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from benchmark.attacks import ATTACKS, build_attack  # noqa: E402
from benchmark.attacks.registry import LISTED_COMBINATIONS, copy_settings  # noqa: E402
from benchmark.lightning.calibration import peak_bytes  # noqa: E402  (torch only, no Lightning)

COMBINATIONS = list(LISTED_COMBINATIONS)


class SmallSegNet(nn.Module):
    """3x3 convs 3 -> 32 -> 32 -> K with ReLUs; logits at input resolution; FSPGD reads ``body.2``."""

    default_feature_layer = "body.2"

    def __init__(self, classes: int = 21, width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, classes, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Counting(nn.Module):
    """The source behind a counter of the images it forwards, with and without autograd."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.grad_images = self.eval_images = 0
        self.default_feature_layer = getattr(model, "default_feature_layer", None)

    def _count(self, x: torch.Tensor) -> None:
        if torch.is_grad_enabled():
            self.grad_images += x.shape[0]
        else:
            self.eval_images += x.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._count(x)
        return self.model(x)

    def features(self, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        self._count(x)
        own = getattr(self.model, "features", None)
        if callable(own):
            return own(x, layers)
        from benchmark.attacks.features import capture

        return capture(self.model, layers, lambda: self.model(x))


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


def _copies(name: str, copies: int) -> dict[str, int]:
    """Settings that set the copy counts of ``name``'s modifiers to ``copies`` (Admix: one mix)."""
    out = copy_settings(name, copies)
    return {**out, "admix_mixes": 1} if "admix_mixes" in out else out


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
    parser.add_argument("--copies", type=int, default=None,
                        help="copies / samples of SI, Admix, SSA, BSR and VT (default: their defaults); the "
                             "per-pass cost does not depend on it, the time per step does")
    parser.add_argument("--memory", action="store_true",
                        help="also the peak memory of each attack's run and its ratio to the bare step's")
    args = parser.parse_args()
    if args.memory and args.device == "cpu" and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        # a fixed threshold: glibc then returns every freed tensor (>= 128 KiB) to the system at once,
        # so the resident set follows the live tensors instead of the allocator's cache
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"})

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

    def forward_only() -> None:
        with torch.no_grad():
            for _ in range(args.steps):
                with amp:
                    model(images)

    bare()  # warm-up
    base = statistics.median(_seconds(bare, args.steps, device) for _ in range(args.repeats))
    forward_only()
    eval_cost = statistics.median(_seconds(forward_only, args.steps, device) for _ in range(args.repeats)) / base
    print(f"device={device} amp={args.amp} batch={args.batch} size={h}x{w} classes={classes} "
          f"steps={args.steps} repeats={args.repeats} threads={torch.get_num_threads()} clock={args.clock}")
    bare_memory = peak_bytes(bare, device, warm_up=False) if args.memory else 0
    memory_head = f" {'peak MiB':>9} {'mem':>6}" if args.memory else ""
    print(f"{'attack':<40} {'s/step':>10} {'ratio':>7} {'grad':>6} {'eval':>6} {'per pass':>8}{memory_head}  note")
    memory_cells = f" {bare_memory / 2**20:>9.1f} {1.0:>6.3f}" if args.memory else ""
    print(f"{'bare forward + input backward':<40} {base:>10.5f} {1.0:>7.3f} {1.0:>6.2f} {0.0:>6.2f} {1.0:>8.3f}"
          f"{memory_cells}")
    print(f"{'eval forward (no autograd)':<40} {base * eval_cost:>10.5f} {eval_cost:>7.3f} {0.0:>6.2f} {1.0:>6.2f}")
    for label, source, extra in cases:
        name = label.split(" ")[0]
        steps = 1 if name == "fgsm" else args.steps
        if args.copies is not None:
            extra = {**extra, **_copies(name, args.copies)}
        attack = build_attack(name, steps=steps, **extra) if name != "fgsm" else build_attack(name, **extra)
        gens = [torch.Generator().manual_seed(i) for i in range(args.batch)]

        def run(attack=attack, source=source, gens=gens, steps=steps) -> None:
            reps = args.steps // steps  # FGSM: as many one-step calls as the others have steps
            for _ in range(reps):
                with amp:
                    attack(source, images, labels, generator=gens)

        counted = [Counting(m) for m in source] if isinstance(source, list) else Counting(source)
        run(source=counted)  # one counted run: the passes per step
        members = counted if isinstance(counted, list) else [counted]
        per_step = args.batch * args.steps
        grad = sum(m.grad_images for m in members) / per_step
        evals = sum(m.eval_images for m in members) / per_step
        seconds, ratio = _paired(run, bare, args.steps, args.repeats, device)
        mods = set(name.split("+")[1:]) | ({"di"} if name == "difgsm" else set())
        exempt = bool(mods & {"di", "ds"}) or isinstance(source, list)
        per_pass = ratio / max(grad + evals * eval_cost, 1e-9)
        note = "exempt (DI / DS / ensemble)" if exempt else ("ok" if per_pass <= 1.10 else "ABOVE 1.10")
        memory_cells = ""
        if args.memory:
            peak = peak_bytes(run, device, warm_up=False)
            memory_cells = f" {peak / 2**20:>9.1f} {peak / max(bare_memory, 1):>6.3f}"
            if not exempt and peak > 1.2 * bare_memory:
                note += ", memory ABOVE 1.2"
        print(f"{label:<40} {seconds:>10.5f} {ratio:>7.3f} {grad:>6.2f} {evals:>6.2f} {per_pass:>8.3f}"
              f"{memory_cells}  {note}")


if __name__ == "__main__":
    main()
