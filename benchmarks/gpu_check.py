"""Attack speed and bf16 agreement on real mmseg architectures: the table of the prepared GPU check.

For each model (PSPNet-R50-D8 and DeepLabV3-R50-D8 from mmseg's shipped VOC 512x512 configs, random
weights from seed 0, built by :func:`benchmark.models.build_segmentor`) and each attack (PGD and
TranSegPGD, eps 8/255, alpha 2/255), the attack runs ``--steps`` steps on a batch of ``--batch``
smooth random images of ``--size``, once in fp32 and once under bf16 autocast. The labels are the
model's own fp32 clean predictions, so clean mIoU is 100 % and the adversarial mIoU (the fp32 model
evaluating each adversarial batch) measures the attack alone. Reported per row: seconds per attack
step (median of ``--repeats`` timed runs after a warm-up), adversarial mIoU in fp32 and bf16 and their
difference, the bf16 speed-up, the bf16 step with the model in ``channels_last`` memory
(``model.channels_last``) and its speed-up over fp32, and peak GPU memory of the fp32 attack.
``--compile`` adds, for the first model and PGD, ``torch.compile`` (inductor) of the source: the
first compiled call's seconds (the compilation) and the compiled fp32 step.

Usage (``benchmarks/gpu_check.sh`` runs it on a GPU machine):
    python benchmarks/gpu_check.py --device cuda
    python benchmarks/gpu_check.py --device cpu --size 64 64 --steps 2 --repeats 1   # a smoke run
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from benchmark.attacks import build_attack  # noqa: E402
from benchmark.metrics import SegmentationScores  # noqa: E402

MODELS = {
    "pspnet-r50": "pspnet/pspnet_r50-d8_4xb4-20k_voc12aug-512x512.py",
    "deeplabv3-r50": "deeplabv3/deeplabv3_r50-d8_4xb4-20k_voc12aug-512x512.py",
}
ATTACKS = ("pgd", "transegpgd")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _images(batch: int, size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """Blocky random images (8x8 cells, bilinearly smoothed): some structure for the models to segment."""
    g = torch.Generator().manual_seed(0)
    coarse = torch.rand(batch, 3, max(1, size[0] // 8), max(1, size[1] // 8), generator=g)
    return torch.nn.functional.interpolate(coarse, size=size, mode="bilinear", align_corners=False).to(device)


def _miou(model, images: torch.Tensor, labels: torch.Tensor) -> float:
    metric = SegmentationScores(model.num_classes).to(images.device)
    with torch.no_grad():
        metric.update(model(images), labels)
    return 100 * metric.compute().miou


def _run(model, name: str, images, labels, steps: int, repeats: int, bf16: bool,
         first: list | None = None) -> tuple[float, torch.Tensor]:
    """Median seconds per step over ``repeats`` timed runs (after one warm-up, whose seconds are
    appended to ``first``) and the last adversarial batch."""
    attack = build_attack(name, eps=8 / 255, alpha=2 / 255, steps=steps)
    device = images.device
    times, adv = [], None
    for repeat in range(repeats + 1):
        generators = [torch.Generator(device=device).manual_seed(i) for i in range(images.shape[0])]
        _sync(device)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            adv = attack(model, images, labels, generator=generators)
        _sync(device)
        if repeat:
            times.append((time.perf_counter() - start) / steps)
        elif first is not None:
            first.append(time.perf_counter() - start)
    return statistics.median(times), adv


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", type=int, nargs=2, default=[512, 512], metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    parser.add_argument("--compile", action="store_true", help="also torch.compile (first model, PGD)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    from benchmark.models import build_segmentor

    rows = []
    for model_name in args.models:
        torch.manual_seed(0)
        model = build_segmentor(MODELS[model_name], device=str(device))
        images = _images(args.batch, tuple(args.size), device)
        with torch.no_grad():
            labels = model(images).argmax(1)
        for attack in ATTACKS:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            fp32_s, fp32_adv = _run(model, attack, images, labels, args.steps, args.repeats, bf16=False)
            peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
            bf16_s, bf16_adv = _run(model, attack, images, labels, args.steps, args.repeats, bf16=True)
            fp32_miou, bf16_miou = _miou(model, fp32_adv, labels), _miou(model, bf16_adv, labels)
            nhwc = copy.deepcopy(model).use_channels_last()
            cl_s, _ = _run(nhwc, attack, images, labels, args.steps, args.repeats, bf16=True)
            del nhwc
            rows.append({"model": model_name, "attack": attack, "size": f"{args.size[0]}x{args.size[1]}",
                         "batch": args.batch, "fp32_s_per_step": fp32_s, "bf16_s_per_step": bf16_s,
                         "bf16_speedup": fp32_s / bf16_s, "fp32_adv_miou": fp32_miou, "bf16_adv_miou": bf16_miou,
                         "miou_diff": bf16_miou - fp32_miou, "fp32_peak_gib": peak,
                         "bf16_channels_last_s_per_step": cl_s, "bf16_channels_last_speedup": fp32_s / cl_s})
            if args.compile and model_name == args.models[0] and attack == "pgd":
                first: list[float] = []
                compiled_s, _ = _run(torch.compile(model), attack, images, labels, args.steps, args.repeats,
                                     bf16=False, first=first)
                rows[-1].update(compile_first_call_s=first[0], compiled_fp32_s_per_step=compiled_s,
                                compiled_speedup=fp32_s / compiled_s)
        del model
    print(f"{'model':<14} {'attack':<11} {'size':<9} {'fp32 s/step':>11} {'bf16 s/step':>11} {'speed-up':>8} "
          f"{'bf16+NHWC':>9} {'speed-up':>8} {'fp32 adv mIoU':>13} {'bf16 adv mIoU':>13} {'diff':>6} "
          f"{'fp32 peak GiB':>13}")
    for r in rows:
        print(f"{r['model']:<14} {r['attack']:<11} {r['size']:<9} {r['fp32_s_per_step']:>11.4f} "
              f"{r['bf16_s_per_step']:>11.4f} {r['bf16_speedup']:>7.2f}x "
              f"{r['bf16_channels_last_s_per_step']:>9.4f} {r['bf16_channels_last_speedup']:>7.2f}x "
              f"{r['fp32_adv_miou']:>13.2f} {r['bf16_adv_miou']:>13.2f} {r['miou_diff']:>+6.2f} "
              f"{r['fp32_peak_gib']:>13.2f}")
    for r in rows:
        if "compile_first_call_s" in r:
            print(f"compile {r['model']} {r['attack']}: first call {r['compile_first_call_s']:.1f} s "
                  f"(compilation), compiled fp32 {r['compiled_fp32_s_per_step']:.4f} s/step, "
                  f"{r['compiled_speedup']:.2f}x eager fp32")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
