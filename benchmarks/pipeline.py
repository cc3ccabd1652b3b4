"""The whole job against a plain loop doing the same work: `benchmark run` time over plain-loop time.

The plain loop is what a researcher would write without the framework: the same zoo models built
with mmseg directly (mmengine Config, ``MODELS.build``, ``load_state_dict`` of the checkpoint's
``state_dict``, normalisation by hand), the same images read by the project's dataset reader, the
same attacks with the same budgets and per-image generators, every target evaluated on the clean
images and on every adversarial set (stacked along the batch), dataset-level confusion matrices and
mIoU, one JSON file. No Lightning, no per-image records, no journal, no logger.

Both sides run as fresh processes of the same interpreter, alternately, ``--repeats`` times; the
table gives the median, min and max wall time of each and the median of the paired ratios, then a
breakdown of the plain loop (interpreter start and imports, model building, data loading, attack,
target evaluation, writing) and of `benchmark run` (the seconds from the command to its first attack,
as its run.log records them, and the validation loop's wall time and throughput from results.json),
and the start-up commands (``benchmark --help``; ``benchmark run --help`` from the help cache and
without it). Numbers are wall seconds on this machine; quote medians.

Usage:
    python benchmarks/pipeline.py                               # configs/default.yaml, --logger none
    python benchmarks/pipeline.py --logger wandb --repeats 5
    python benchmarks/pipeline.py --device cuda                 # on a GPU (trainer.accelerator gpu)
    python benchmarks/pipeline.py --plain-only                  # just the plain loop, with its breakdown
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- the plain loop (a child process)


def plain_loop(config_path: str, device_name: str, out: Path, started: float) -> dict[str, float]:
    """Run the job of ``config_path`` as a plain loop; returns the seconds of each phase."""
    phases: dict[str, float] = {}
    mark = started

    def lap(name: str) -> None:
        nonlocal mark
        now = time.monotonic()  # system-wide: comparable with the parent's start time
        phases[name] = phases.get(name, 0.0) + now - mark
        mark = now

    import hashlib

    import torch
    import torch.nn.functional as F
    import yaml

    sys.path.insert(0, str(ROOT))
    import benchmark  # noqa: F401  (registers the mmcv.ops stand-in that mmseg needs beside mmcv-lite)
    from benchmark.attacks import build_attack
    from benchmark.data import build_dataset
    from mmengine.config import Config, ConfigDict
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    lap("start and imports")

    cfg = yaml.safe_load(Path(config_path).read_text())
    device = torch.device(device_name)
    zoo = {}
    for path in (ROOT / "configs" / "models").glob("*.yaml"):
        zoo.update(yaml.safe_load(path.read_text()))

    def build(name: str):
        entry = zoo[name]
        model_cfg = Config.fromfile(str(ROOT / entry["config"])).model
        pre = model_cfg.pop("data_preprocessor")
        net = MODELS.build(ConfigDict(model_cfg))
        state = torch.load(ROOT / entry["checkpoint"], map_location="cpu", weights_only=False)["state_dict"]
        net.load_state_dict(state)
        net = net.to(device).eval().requires_grad_(False)
        mean = torch.tensor(pre["mean"], device=device).view(1, -1, 1, 1) / 255
        std = torch.tensor(pre["std"], device=device).view(1, -1, 1, 1) / 255

        def forward(x):
            h, w = x.shape[-2:]
            metas = [dict(ori_shape=(h, w), img_shape=(h, w), pad_shape=(h, w), padding_size=[0, 0, 0, 0])
                     for _ in range(x.shape[0])]
            return net.inference((x - mean) / std, metas)

        return forward

    source_name = cfg["model"]["source"][0]
    targets = {name: build(name) for name in cfg["model"]["targets"]}
    source = targets[source_name] if source_name in targets else build(source_name)
    lap("model building")

    data = cfg["data"]
    dataset = build_dataset(data["dataset"], ROOT / data["root"], split=data.get("split", "val"),
                            limit=data.get("limit"), resize=data.get("resize", "mmseg"))
    loader = torch.utils.data.DataLoader(dataset, batch_size=data.get("batch_size", 1))
    attack_cfg = cfg["attack"]
    budget = {k: attack_cfg[k] for k in ("eps", "steps", "alpha") if attack_cfg.get(k) is not None}
    attacks = {name: build_attack(name, **budget) for name in attack_cfg["attacks"]}
    seed = attack_cfg.get("seed", 0)
    k = dataset.info.num_classes
    conditions = ["clean", *attacks]
    confusion = {(t, c): torch.zeros(k, k, dtype=torch.long, device=device) for t in targets for c in conditions}
    lap("setup")

    def generators(attack: str, names) -> list[torch.Generator]:
        out = []
        for name in names:
            digest = hashlib.sha256(f"{seed}\0{attack}\0{name}".encode()).digest()
            out.append(torch.Generator(device=device).manual_seed(int.from_bytes(digest[:8], "little")))
        return out

    batches = iter(loader)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            lap("data loading")
            break
        images, labels = batch["image"].to(device), batch["label"].to(device)
        lap("data loading")
        adversarial = []
        with torch.enable_grad():
            for name, attack in attacks.items():
                adversarial.append(attack(source, images, labels, generator=generators(name, batch["name"])))
        lap("attack")
        stacked = torch.cat([images, *adversarial])
        valid = (labels != 255).repeat(len(conditions), 1, 1)
        with torch.no_grad():
            for target, net in targets.items():
                logits = net(stacked)
                if logits.shape[-2:] != labels.shape[-2:]:
                    logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
                pred = logits.argmax(1)
                gt = labels.repeat(len(conditions), 1, 1)
                for i, condition in enumerate(conditions):
                    rows = slice(i * labels.shape[0], (i + 1) * labels.shape[0])
                    v = valid[rows]
                    confusion[(target, condition)] += torch.bincount(
                        (gt[rows] * k + pred[rows])[v], minlength=k * k).view(k, k)
        lap("target evaluation")

    result = {}
    for (target, condition), matrix in confusion.items():
        matrix = matrix.double().cpu()
        inter, union = matrix.diag(), matrix.sum(0) + matrix.sum(1) - matrix.diag()
        present = union > 0
        result[f"{target}/{condition}"] = float((inter[present] / union[present]).mean())
    out.write_text(json.dumps(result, indent=1))
    lap("result file")
    return phases


# ---------------------------------------------------------------- the driver


def _run(cmd: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    start = time.monotonic()
    # the child's clock starts before its interpreter does: start-up and imports are counted
    done = subprocess.run(cmd, capture_output=True, text=True, env={**env, "PIPELINE_T0": repr(start)}, cwd=ROOT)
    seconds = time.monotonic() - start
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(cmd[:4])} ... exited {done.returncode}: "
                 f"{(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return seconds, done


def first_attack(out_dir: Path) -> float:
    """Seconds from the command to the first attack, as ``benchmark run`` logs it in run.log."""
    found = re.search(r"first attack started ([0-9.]+) s after the command", (out_dir / "run.log").read_text())
    return float(found.group(1)) if found else float("nan")


def start_up(repeats: int, env: dict) -> list[tuple[str, list[float]]]:
    """Wall seconds of the help commands: the command list, ``run --help`` from the help cache (after
    one call that fills it) and produced by LightningCLI (cache off)."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**env, "XDG_CACHE_HOME": cache}
        commands = [("benchmark --help", ["--help"], {}),
                    ("benchmark run --help (cached)", ["run", "--help"], {}),
                    ("benchmark run --help (no cache)", ["run", "--help"], {"BENCHMARK_HELP_CACHE": "0"})]
        _run([sys.executable, "-m", "benchmark", "run", "--help"], env)  # fills the cache
        rows = []
        for label, argv, extra in commands:
            rows.append((label, [_run([sys.executable, "-m", "benchmark", *argv], {**env, **extra})[0]
                                 for _ in range(repeats)]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--logger", choices=["none", "wandb"], default="none")
    parser.add_argument("--plain-only", action="store_true", help="time only the plain loop")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # internal: run the loop here
    args = parser.parse_args()

    if args.child:
        phases = plain_loop(args.config, args.device, Path(args.child), float(os.environ["PIPELINE_T0"]))
        print(json.dumps(phases))
        return

    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    plain_times, run_times, ratios, plain_phases, run_phases, differences = [], [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            out = Path(tmp) / f"plain-{r}.json"
            plain_cmd = [sys.executable, __file__, "--config", args.config, "--device", args.device,
                         "--child", str(out)]
            accelerator = "gpu" if args.device.startswith("cuda") else "cpu"
            run_cmd = [sys.executable, "-m", "benchmark", "run", "--config", args.config, "--logger", args.logger,
                       "--results.out_dir", str(Path(tmp) / f"run-{r}"), "--results.quiet", "true",
                       "--progress.refresh_rate", "0", "--trainer.accelerator", accelerator]
            order = [("plain", plain_cmd), ("run", run_cmd)]
            if r % 2:
                order.reverse()
            seconds = {}
            for kind, cmd in order:
                if kind == "run" and args.plain_only:
                    continue
                seconds[kind], done = _run(cmd, env)
                if kind == "plain":
                    plain_phases.append(json.loads(done.stdout.strip().splitlines()[-1]))
                else:
                    result = json.loads((Path(tmp) / f"run-{r}" / "results.json").read_text())
                    run_phases.append({**result["timings"],
                                       "command to first attack (run.log)": first_attack(Path(tmp) / f"run-{r}")})
                    run_miou = {f"{m['target']}/{m['condition']}": m["miou"] for m in result["metrics"]}
            if not args.plain_only:  # the same work: the same mIoU for every target and condition
                plain_miou = json.loads(out.read_text())
                differences.append(max(abs(plain_miou[key] - run_miou[key]) for key in plain_miou))
            plain_times.append(seconds["plain"])
            if not args.plain_only:
                run_times.append(seconds["run"])
                ratios.append(seconds["run"] / seconds["plain"])

    def stats(values):
        return f"{statistics.median(values):8.2f} {min(values):8.2f} {max(values):8.2f}"

    print(f"config={args.config} device={args.device} logger={args.logger} repeats={args.repeats}")
    print(f"{'':<34} {'median':>8} {'min':>8} {'max':>8}  (wall s)")
    print(f"{'plain loop':<34} {stats(plain_times)}")
    if run_times:
        print(f"{'benchmark run':<34} {stats(run_times)}")
        print(f"{'ratio run / plain (paired)':<34} {stats(ratios)}")
        print(f"largest |mIoU(run) - mIoU(plain)| over targets and conditions: {max(differences):.2e}")
    print(f"\nstart-up ({args.repeats} runs each)   {'median':>8} {'min':>8} {'max':>8}  (wall s)")
    for label, values in start_up(args.repeats, env):
        print(f"  {label:<32} {stats(values)}")
    print("\nplain loop breakdown (median s):")
    for phase in plain_phases[0]:
        print(f"  {phase:<32} {statistics.median(p.get(phase, 0.0) for p in plain_phases):8.2f}")
    if run_phases:
        print("\nbenchmark run (median s, from results.json timings):")
        for key in run_phases[0]:
            if isinstance(run_phases[0][key], (int, float)):
                print(f"  {key:<32} {statistics.median(p[key] for p in run_phases):8.2f}")


if __name__ == "__main__":
    main()
