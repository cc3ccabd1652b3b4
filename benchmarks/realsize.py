"""The paper's protocol at real size: the shipped VOC and Cityscapes configs, end to end, on this machine.

`configs/voc/pspnet-r50_transfer.yaml` and `configs/cityscapes/pspnet-r50_transfer.yaml` run through the
real CLI (``benchmark run``, a fresh process each) with only size-reducing overrides (``--data.limit``,
``--attack.steps 1``, two attacks, two targets; ``--model.mode slide`` for the window comparison) and locations (``--data.root``, ``--results.out_dir``,
``BENCHMARK_CHECKPOINT_DIR``), on files written here; nothing is downloaded or written into the repository.

- **Data.** VOC layout (``JPEGImages``, palette ``SegmentationClass``, ``ImageSets/Segmentation/val.txt``):
  three textured images at VOC's native sizes 500x375, 375x500, 500x333 (W x H) whose labels use all 21
  classes, with 255 borders around objects. Cityscapes layout (``leftImg8bit/val/frankfurt``, only
  ``*_gtFine_labelIds.png``, so the loader converts to trainIds): one 2048x1024 street scene with the 19
  evaluated ids and some ignored ones. Each split holds exactly the evaluated images (not a partial run).
- **Checkpoints.** Random weights (``build_segmentor``) of the zoo's R50 entries under the entries' official
  file names, alternately an mmcv-1.x / mmseg-0.x checkpoint and an mmengine Runner checkpoint.
- **Figures.** *wall*: command start to exit. *cpu*: the child's user + system seconds (on a shared machine
  wall time grows with the others' load, CPU time much less). *loop*: results.json ``timings.wall_s``, the
  validation loop (attacks, target evaluation, metrics, final scores). *1st att*: "first attack started S s
  after the command" from run.log. *s/step* = loop / (images x sum over sources, attacks and seeds of the
  attack's steps): target evaluation and TranSegPGD's clean forward are included, a large share at 1 step,
  so this bounds a step at 20 steps from above. *peak*: the child's peak resident set, ``ru_maxrss`` of
  ``os.wait4`` on that one process (KiB on Linux; printed in GiB).
- **Cityscapes runs.** The shipped protocol first: mmseg tests its Cityscapes 512x1024 CNN configs (the
  zoo's PSPNet, DeepLabV3, ... entries) in *whole* mode, the 2048x1024 image in one pass, and SegFormer
  (the second target here) in 1024x1024 windows. Then every model in windows (``--model.mode slide``: the
  PSPNet takes its 512x1024 training crop, stride 341x683, 9 windows per image) with and without
  ``--model.checkpoint_windows true`` (which acts on slide-mode sources only): the memory a small GPU needs.

Usage:
    python benchmarks/realsize.py                          # VOC; Cityscapes whole, slide with and without windows
    python benchmarks/realsize.py --no-windows-compare     # VOC and the shipped Cityscapes protocol only
    python benchmarks/realsize.py --all-r50 --out /tmp/rs --keep   # every R50 checkpoint, keep the files
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]

VOC_IMAGES = (("2007_000033", 500, 375), ("2007_000042", 375, 500), ("2007_000061", 500, 333))  # name, W, H
CITYSCAPES_IMAGE = ("frankfurt", "frankfurt_000000_000294", 2048, 1024)  # city, name, W, H
# The street scene as labelIds rectangles (x0, y0, x1, y1), drawn in order: the 19 evaluated ids of
# cityscapesScripts' labels.py and some ids it ignores (1 ego vehicle, 4 static, 9 parking, 0 unlabeled).
CITYSCAPES_SCENE = (
    (23, (0, 0, 2048, 330)), (11, (0, 200, 760, 560)), (11, (1380, 160, 2048, 560)), (12, (760, 330, 980, 560)),
    (21, (980, 250, 1380, 560)), (7, (0, 560, 2048, 1024)), (8, (0, 560, 420, 1024)), (8, (1700, 560, 2048, 1024)),
    (22, (420, 560, 620, 700)), (13, (1420, 480, 1700, 600)), (9, (1500, 640, 1700, 760)), (4, (60, 600, 160, 700)),
    (17, (640, 150, 660, 640)), (19, (620, 150, 680, 250)), (20, (700, 300, 800, 380)), (24, (200, 560, 260, 760)),
    (25, (300, 600, 360, 780)), (26, (700, 640, 980, 820)), (27, (1000, 560, 1260, 800)), (28, (1280, 540, 1500, 820)),
    (31, (420, 700, 690, 900)), (32, (1500, 800, 1600, 900)), (33, (1600, 780, 1700, 900)), (0, (0, 900, 2048, 940)),
    (1, (0, 940, 2048, 1024)),
)  # fmt: skip
ATTACKS = ("pgd", "transegpgd")


# ---------------------------------------------------------------- data


def textured(rng: np.random.Generator, label: np.ndarray, colours: dict[int, tuple[int, int, int]]) -> np.ndarray:
    """An RGB uint8 image: each label's colour, a smooth random shading and pixel noise (not solid)."""
    height, width = label.shape
    base = np.zeros((height, width, 3), dtype=np.float32)
    for value in np.unique(label):
        base[label == value] = colours.get(int(value), (128, 128, 128))
    coarse = rng.normal(0, 30, size=(height // 24 + 2, width // 24 + 2, 3)).astype(np.float32)
    shading = np.stack([np.asarray(Image.fromarray(coarse[..., c]).resize((width, height), Image.BILINEAR))
                        for c in range(3)], axis=-1)
    noise = rng.normal(0, 12, size=(height, width, 3)).astype(np.float32)
    return np.clip(base * 0.7 + shading + noise + 40, 0, 255).astype(np.uint8)


def with_borders(label: np.ndarray, radius: int = 2, ignore_index: int = 255) -> np.ndarray:
    """VOC's convention: pixels within ``radius`` (Chebyshev) of a class change become ``ignore_index``."""
    padded = np.pad(label, radius, mode="edge")
    height, width = label.shape
    border = np.zeros(label.shape, dtype=bool)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            border |= padded[dy:dy + height, dx:dx + width] != label
    return np.where(border, ignore_index, label).astype(np.uint8)


def write_voc(root: Path, seed: int = 0, images: Sequence[tuple[str, int, int]] = VOC_IMAGES) -> Path:
    """The VOC2012 layout with ``images`` (name, W, H; default :data:`VOC_IMAGES`); the classes 1..20 are
    dealt out over the images, so together the labels hold classes 0..20 and 255 (with 3 images or more)."""
    from benchmark.data import DATASETS

    palette = DATASETS["voc2012"].palette
    rng = np.random.default_rng(seed)
    classes = [np.arange(1, len(palette))[k::len(images)][:9] for k in range(len(images))]
    for (name, width, height), objects in zip(images, classes):
        canvas = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(canvas)
        cell_w, cell_h = width // 3, height // 3
        for cell, value in enumerate(objects):  # one object per cell of a 3 x 3 grid, so each stays visible
            x, y = (cell % 3) * cell_w, (cell // 3) * cell_h
            box = (x + _margin(rng, cell_w), y + _margin(rng, cell_h),
                   x + cell_w - _margin(rng, cell_w), y + cell_h - _margin(rng, cell_h))
            (draw.ellipse if cell % 2 else draw.rectangle)(box, fill=int(value))
        label = with_borders(np.asarray(canvas))
        _save(root / "JPEGImages" / f"{name}.jpg", textured(rng, label, dict(enumerate(palette))), quality=90)
        target = Image.fromarray(label)  # "L"; putpalette makes it a palette ("P") image
        border = (224, 224, 192)  # VOC's colour of index 255
        target.putpalette([c for colour in (*palette, *[(0, 0, 0)] * (255 - len(palette)), border) for c in colour])
        _save(root / "SegmentationClass" / f"{name}.png", target)
    split = root / "ImageSets" / "Segmentation" / "val.txt"
    split.parent.mkdir(parents=True, exist_ok=True)
    split.write_text("".join(f"{name}\n" for name, _, _ in images))
    return root


def _margin(rng: np.random.Generator, cell: int) -> int:
    """An object's random inset in its grid cell: 5 to cell/5 pixels (less in a small cell)."""
    return int(rng.integers(min(5, max(1, cell // 10)), max(2, cell // 5)))


def write_cityscapes(root: Path, seed: int = 0) -> Path:
    """The Cityscapes layout with one 2048x1024 image and its ``*_gtFine_labelIds.png`` (no trainIds)."""
    from benchmark.data import DATASETS

    info = DATASETS["cityscapes"]
    city, name, width, height = CITYSCAPES_IMAGE
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for label_id, box in CITYSCAPES_SCENE:
        draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=label_id)
    label_ids = np.asarray(canvas)
    colours = {stored: info.palette[train] for stored, train in info.id_to_train_id if train != info.ignore_index}
    image = textured(np.random.default_rng(seed), label_ids, colours)
    _save(root / "leftImg8bit" / "val" / city / f"{name}_leftImg8bit.png", image)
    _save(root / "gtFine" / "val" / city / f"{name}_gtFine_labelIds.png", label_ids)
    return root


def _save(path: Path, image: np.ndarray | Image.Image, **options) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(path, **options)


# ---------------------------------------------------------------- random-weight checkpoints


def r50_entries() -> list[str]:
    """Every R50 entry of the shipped VOC and Cityscapes zoo files, in file order."""
    import yaml

    return [name for dataset in ("voc", "cityscapes")
            for name in yaml.safe_load((ROOT / "configs" / "models" / f"{dataset}.yaml").read_text())
            if "-r50-" in name]


def mmcv1_checkpoint(state_dict: dict, classes, palette, config_text: str) -> dict:
    """The mmcv 1.x / mmseg 0.x layout of the official files: meta with CLASSES, PALETTE, config text."""
    import torch

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=0.01, momentum=0.9, weight_decay=5e-4)
    meta = dict(mmcv_version="1.3.8", time="Thu Jun 17 10:19:58 2020", env_info="sys.platform: linux\nCUDA: 10.1",
                config=config_text, seed=0, exp_name="realsize.py", CLASSES=tuple(classes),
                PALETTE=[list(c) for c in palette], epoch=1, iter=20000, hook_msgs=dict(last_ckpt="iter_20000.pth"))
    return dict(meta=meta, state_dict=state_dict, optimizer=optimizer.state_dict())


def runner_checkpoint(state_dict: dict, classes, palette, config_text: str) -> dict:
    """What mmengine's ``Runner.save_checkpoint`` writes: meta with numpy values, message hub, optimizer
    and scheduler states, built from mmengine's own objects."""
    import torch
    from mmengine.logging import MessageHub
    from mmengine.optim import OptimWrapper
    from mmengine.optim.scheduler import PolyLR

    hub = MessageHub.get_instance(f"realsize-{time.monotonic_ns()}")
    hub.update_scalar("train/loss", np.float64(0.73))
    hub.update_info("iter", 40000)
    parameter = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([parameter], lr=0.01, momentum=0.9)
    parameter.grad = torch.ones(3)
    optimizer.step()
    scheduler = PolyLR(optimizer, eta_min=1e-4, power=0.9, begin=0, end=100, by_epoch=False)
    meta = dict(cfg=config_text, seed=np.int64(0), experiment_name="realsize", time="20261201_120000",
                mmengine_version="0.10.7", epoch=0, iter=40000, lr=np.float32(0.01),
                dataset_meta=dict(classes=tuple(classes), palette=[list(c) for c in palette]))
    return dict(meta=meta, state_dict=state_dict, message_hub=hub.state_dict(),
                optimizer=OptimWrapper(optimizer).state_dict(), param_schedulers=[scheduler.state_dict()])


CHECKPOINT_FORMATS = {"mmcv1": mmcv1_checkpoint, "mmengine": runner_checkpoint}


def write_checkpoints(folder: Path, names: list[str], seed: int = 0) -> dict[str, Path]:
    """Random-weight checkpoints of zoo entries ``names`` under their official file names in ``folder``;
    the formats alternate (mmcv1, mmengine, mmcv1, ...) in the order of ``names``."""
    import torch

    from benchmark.data import DATASETS
    from benchmark.models import build_segmentor, get_model_entry
    from benchmark.models.mmseg_adapter import mmseg_config_dir

    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for index, name in enumerate(names):
        entry = get_model_entry(name)
        with torch.random.fork_rng(devices=[]):  # the caller's (a test's) global RNG stays as it was
            torch.manual_seed(seed + index)
            state = build_segmentor(entry.config_path, mode=entry.mode).segmentor.state_dict()
        info = DATASETS[entry.dataset]
        config = Path(entry.config_path)
        text = (config if config.is_file() else mmseg_config_dir() / entry.config).read_text()
        make = list(CHECKPOINT_FORMATS.values())[index % len(CHECKPOINT_FORMATS)]
        paths[name] = folder / Path(entry.checkpoint).name
        torch.save(make(state, info.classes, info.palette, text), paths[name])
    return paths


# ---------------------------------------------------------------- runs


@dataclass(frozen=True)
class RunSpec:
    """One run of a shipped config: ``dataset`` names the folder ("voc" or "cityscapes"), ``images`` is
    ``--data.limit`` (every image of the written split, so the result is complete), ``extra`` further options."""

    label: str
    config: str
    dataset: str
    images: int
    targets: tuple[str, ...]
    attacks: tuple[str, ...] = ATTACKS
    extra: tuple[str, ...] = ()

    @property
    def models(self) -> list[str]:
        """The config's source(s) and the targets: the checkpoints the run reads."""
        import yaml

        source = yaml.safe_load((ROOT / self.config).read_text())["model"]["source"]
        return [*([source] if isinstance(source, str) else source), *self.targets]


VOC_CONFIG, CITYSCAPES_CONFIG = "configs/voc/pspnet-r50_transfer.yaml", "configs/cityscapes/pspnet-r50_transfer.yaml"
CITYSCAPES_TARGETS = ("pspnet-r50-cityscapes", "segformer-b0-cityscapes")  # whole mode; 3 windows of 1024x1024
SLIDE, WINDOWS = ("--model.mode", "slide"), ("--model.checkpoint_windows", "true")
RUNS = (
    RunSpec("voc", VOC_CONFIG, "voc", len(VOC_IMAGES), ("pspnet-r50-voc", "deeplabv3-r50-voc")),
    RunSpec("cityscapes", CITYSCAPES_CONFIG, "cityscapes", 1, CITYSCAPES_TARGETS),
    # every model in windows (PSPNet: its 512x1024 training crop, stride 341x683, 9 windows), with and
    # without the source's window checkpointing: what a small GPU needs
    RunSpec("cityscapes, slide, checkpoint_windows", CITYSCAPES_CONFIG, "cityscapes", 1, CITYSCAPES_TARGETS,
            extra=(*SLIDE, *WINDOWS)),
    RunSpec("cityscapes, slide", CITYSCAPES_CONFIG, "cityscapes", 1, CITYSCAPES_TARGETS, extra=SLIDE),
)


def write_data(folder: Path) -> dict[str, Path]:
    """Both dataset folders under ``folder``, keyed as :attr:`RunSpec.dataset` names them."""
    return {"voc": write_voc(folder / "VOC2012"), "cityscapes": write_cityscapes(folder / "cityscapes")}


def checkpoint_names(specs) -> list[str]:
    """The zoo entries the runs ``specs`` read, once each, in zoo order."""
    from benchmark.models.zoo import load_zoo

    order = list(load_zoo())
    return sorted({name for spec in specs for name in spec.models}, key=order.index)


@dataclass(frozen=True)
class Measured:
    """One ``benchmark run``: see the module docstring for each figure's definition."""

    spec: RunSpec
    out_dir: Path
    returncode: int
    wall_s: float
    loop_s: float
    first_attack_s: float | None
    images: int
    steps_per_image: int
    source_mode: str
    cpu_s: float
    peak_rss_kib: int
    stderr: str

    @property
    def seconds_per_step(self) -> float:
        return self.loop_s / max(1, self.images * self.steps_per_image)

    def row(self) -> str:
        first = "-" if self.first_attack_s is None else f"{self.first_attack_s:.1f}"
        return (f"{self.spec.label:<37} {self.images:>6} {self.steps_per_image:>5} {self.source_mode:>6} "
                f"{self.wall_s:>8.1f} {self.cpu_s:>8.1f} {self.loop_s:>8.1f} {first:>8} {self.seconds_per_step:>8.2f} "
                f"{self.peak_rss_kib / 2**20:>9.2f}")


HEADER = (f"{'run':<37} {'images':>6} {'steps':>5} {'source':>6} {'wall s':>8} {'cpu s':>8} {'loop s':>8} "
          f"{'1st att':>8} {'s/step':>8} {'peak GiB':>9}")


def run_benchmark(spec: RunSpec, data_root: Path, checkpoint_dir: Path, out_dir: Path, steps: int = 1) -> Measured:
    """``benchmark run --config CONFIG`` with size-reducing overrides, in a fresh child process."""
    cmd = [sys.executable, "-m", "benchmark", "run", "--config", spec.config, "--data.root", str(data_root),
           "--data.limit", str(spec.images), "--attack.steps", str(steps),
           "--attack.attacks", f"[{', '.join(spec.attacks)}]", "--model.targets", f"[{', '.join(spec.targets)}]",
           "--results.out_dir", str(out_dir), "--logger", "none", "--results.quiet", "true",
           "--progress.refresh_rate", "0", *spec.extra]
    env = {**os.environ, "BENCHMARK_CHECKPOINT_DIR": str(checkpoint_dir), "WANDB_MODE": "offline"}
    with tempfile.TemporaryFile() as stderr:
        start = time.monotonic()
        child = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage: its peak resident set
        wall = time.monotonic() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        stderr.seek(0)
        errors = stderr.read().decode(errors="replace")
    loop, images, steps_per_image, first, mode = 0.0, 0, 0, None, "-"
    if child.returncode == 0:
        result = json.loads((out_dir / "results.json").read_text())
        loop, images = result["timings"]["wall_s"], result["dataset"]["num_images"]
        steps_per_image = (len(result["sources"]) * len(result["seeds"])
                           * sum(attack["settings"]["steps"] for attack in result["attacks"]))
        mode = "/".join(m["inference_mode"] for m in result["models"] if "source" in m["roles"])
        found = re.search(r"first attack started ([\d.]+) s after the command", (out_dir / "run.log").read_text())
        first = float(found.group(1)) if found else None
    return Measured(spec, out_dir, child.returncode, wall, loop, first, images, steps_per_image, mode,
                    usage.ru_utime + usage.ru_stime, usage.ru_maxrss, errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="work folder, kept (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    parser.add_argument("--all-r50", action="store_true",
                        help="write every R50 checkpoint of the VOC and Cityscapes zoo files")
    parser.add_argument("--no-windows-compare", action="store_true",
                        help="skip the two slide-mode Cityscapes runs (with and without checkpoint_windows)")
    args = parser.parse_args()
    specs = [spec for spec in RUNS if not (args.no_windows_compare and SLIDE[0] in spec.extra)]
    work = args.out or Path(tempfile.mkdtemp(prefix="realsize-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        start = time.monotonic()
        data = write_data(work / "data")
        names = r50_entries() if args.all_r50 else checkpoint_names(specs)
        write_checkpoints(work / "checkpoints", names)
        import torch

        print(f"data and {len(names)} random-weight checkpoints ({', '.join(names)}) written to {work} "
              f"in {time.monotonic() - start:.1f} s; torch threads per run: {torch.get_num_threads()}")
        print(HEADER)
        for spec in specs:
            out = work / "runs" / re.sub(r"\W+", "-", spec.label).strip("-")
            run = run_benchmark(spec, data[spec.dataset], work / "checkpoints", out)
            if run.returncode != 0:
                sys.exit(f"error: run {spec.label!r} exited {run.returncode}: {run.stderr.strip()[-2000:]}")
            print(run.row(), flush=True)
        print(f"steps: attack steps per image ({' + '.join(ATTACKS)} at --attack.steps 1); source: its inference "
              "mode; cpu: the child's user + system s; loop: results.json timings.wall_s; "
              "s/step = loop / (images x steps); peak: ru_maxrss of the child")
    finally:
        if args.out is None and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"files kept in {work}")


if __name__ == "__main__":
    main()
