"""``benchmark plan``: the cost of a job, printed before any attack.

Takes the configuration and overrides of ``benchmark run`` (the same parser, validated without a
Trainer) and prints the images (per rank by :func:`stride_share`, the DDP rule), sources x attacks x
seeds and targets, every attack's passes per image (:func:`benchmark.attacks.count_passes`), the input
sizes the resize policy produces (image headers only) with the sliding windows of slide-mode models,
and, unless ``--calibrate false``, the calibrated estimate (:mod:`benchmark.lightning.calibration`,
arithmetic in :mod:`benchmark.costs`): wall time for 1, 2, 4 and 8 processes, peak memory of a source
grad pass per image, and whether ``model.eval_batch_size`` fits the device. ``--json FILE`` writes
the numbers.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from benchmark import costs
from benchmark.attacks import count_passes
from benchmark.errors import BenchmarkError, ConfigError
from benchmark.lightning import calibration
from benchmark.lightning.cli import ConfigCheckCLI, check_config, one_line
from benchmark.lightning.datamodule import stride_share
from benchmark.lightning.module import source_specs
from benchmark.lightning.preflight import check_accelerator
from benchmark.lightning.runlog import seconds_since_start

PROCESSES = (1, 2, 4, 8)
MIB = 2**20


class PlanCLI(ConfigCheckCLI):
    """Print the cost of a `benchmark run` job before any attack: images per rank, conditions, passes per
    image of every attack, input sizes and sliding windows, and (calibrated on the chosen device) the
    wall time for 1-8 processes and the memory. Takes every option of `benchmark run`."""

    prog = "benchmark plan"

    def add_arguments_to_parser(self, parser) -> None:
        super().add_arguments_to_parser(parser)
        group = parser.add_argument_group("Plan (benchmark plan only)")
        group.add_argument("--calibrate", type=bool, default=True,
                           help="build the models and time their passes on trainer.accelerator (default true)")
        group.add_argument("--repeats", type=int, default=2, help="timed passes per model after a warm-up")
        group.add_argument("--json", type=str | None, default=None, help="also write the numbers to this file")


def world_size(trainer) -> int:
    """Processes of a run with these trainer settings: devices (a count, a list, "0,1", "auto") x nodes."""
    devices = trainer.get("devices", 1)
    if isinstance(devices, (list, tuple)):
        count = len(devices)
    elif str(devices).strip() in ("auto", "-1"):  # every GPU of a GPU run; a CPU run's "auto" is one process
        on_gpu = calibration.device_for(trainer.get("accelerator")).type == "cuda"
        count = max(torch.cuda.device_count(), 1) if on_gpu else 1
    elif isinstance(devices, str) and "," in devices:
        count = len([d for d in devices.split(",") if d.strip()])
    else:
        count = int(devices)
    return count * int(trainer.get("num_nodes") or 1)


def _job(datamodule, attack_callback, model_config, sizes) -> costs.Job:
    passes = {name: count_passes(attack.name, **_settings(attack)) for name, attack in attack_callback.attacks.items()}
    return costs.Job(sizes=tuple(sizes), sources=tuple(source_specs(model_config.source, model_config.sources)),
                     attacks=passes, seeds=len(attack_callback.seeds), targets=tuple(model_config.targets),
                     batch_size=datamodule.batch_size, eval_batch_size=model_config.eval_batch_size)


def _settings(attack) -> dict:
    from benchmark.attacks.settings import build_options

    return build_options(attack.to_dict())


def job_totals_line(datamodule, attack_callback, config) -> str:
    """One line for run.log: images per rank, conditions and the job's passes (no calibration)."""
    n = len(datamodule.dataset)
    job = _job(datamodule, attack_callback, config.model, sizes=())  # counts only: no image header is read
    total, processes = costs.totals(job, images=n), world_size(config.trainer)
    ranks = [len(stride_share(range(n), r, processes)) for r in range(processes)]
    shard = "" if datamodule.shard is None else f" (shard {datamodule.shard_text} of a job of {datamodule.job_size})"
    return (f"plan: {n} images{shard}, {processes} process(es) with {_spread(ranks)} images each; {_conditions(job)}; "
            f"passes of the job: {total.source_grad} source grad, {total.source_eval} source eval, "
            f"{total.target_eval} target eval (`benchmark plan` estimates the time)")


def _spread(values) -> str:
    return f"{min(values)}" if min(values) == max(values) else f"{min(values)}-{max(values)}"


def _conditions(job: costs.Job) -> str:
    return (f"{len(job.sources)} source(s) x {len(job.attacks)} attack(s) x {job.seeds} seed(s) = "
            f"{job.conditions} conditions, {len(job.targets)} target(s)")


def make_plan(cli: PlanCLI) -> dict:
    """The plan of a parsed configuration, as plain data (what ``--json`` writes)."""
    config, datamodule = cli.config, cli.datamodule
    startup_s = seconds_since_start()
    if config.repeats < 1:
        raise ConfigError(f"--repeats must be at least 1, got {config.repeats}")
    dataset = datamodule.dataset
    sizes = [dataset.input_size(i) for i in range(len(dataset))]
    job = _job(datamodule, cli.attack, config.model, sizes)
    processes = world_size(config.trainer)
    names = list(dict.fromkeys([*(m for source in job.sources for m in source), *job.targets]))
    sources = {m for source in job.sources for m in source}
    plan = {
        "dataset": {"name": datamodule.dataset_name, "root": str(datamodule.root), "split": datamodule.split,
                    "images": len(sizes), "shard": datamodule.shard_text},
        "processes": processes,
        "images_per_rank": [len(stride_share(sizes, r, processes)) for r in range(processes)],
        "batch_size": job.batch_size, "eval_batch_size": job.eval_batch_size, "eval_chunk": job.eval_chunk,
        "sources": [list(s) for s in job.sources], "targets": list(job.targets), "seeds": job.seeds,
        "conditions": job.conditions,
        "attacks": {name: {"grad": p.grad, "eval": p.eval, "canvas": p.canvas, "partial": p.partial}
                    for name, p in job.attacks.items()},
        "totals": vars(costs.totals(job)),
        "sizes": [{"height": h, "width": w, "images": count} for (h, w), count in costs.size_histogram(sizes)],
    }
    calibrate = config.calibrate
    if calibrate:
        check_accelerator(config.trainer.accelerator)
        device = calibration.device_for(config.trainer.accelerator)
        reference, batch = costs.largest_size(sizes), min(job.batch_size, len(sizes))
        calibrated = calibration.calibrate(
            names, sources, reference, batch, device, mode=config.model.mode,
            checkpoint_windows=config.model.checkpoint_windows, channels_last=config.model.channels_last,
            autocast=config.attack.autocast, repeats=config.repeats)
        shapes = calibrated.geometries
    else:
        shapes = {name: calibration.geometry_without_weights(name, config.model.mode) for name in names}
    plan["models"] = {name: _model_entry(name, shapes[name], job, sources, sizes) for name in names}
    plan["notes"] = _notes(job, config)
    if calibrate:
        plan["calibration"] = _estimate(job, calibrated, dataset, datamodule, startup_s, device, reference, batch,
                                        config.repeats, processes)
    return plan


def _notes(job: costs.Job, config) -> list[str]:
    """What the estimate leaves out or bounds."""
    notes = [f"{name}: its grad passes stop at the feature layer and are costed as whole passes (an upper bound)"
             for name, p in job.attacks.items() if p.partial]
    if config.attack.compile:
        notes.append("attack.compile: passes are timed eagerly (no compilation time, no compiled speed-up)")
    if config.logger == "wandb":
        notes.append("logger wandb: its start and its final writing are not included")
    return notes


def _model_entry(name, shape: calibration.Geometry, job: costs.Job, sources, sizes) -> dict:
    roles = [role for role, members in (("source", sources), ("target", job.targets)) if name in members]
    entry = {"roles": roles, "mode": shape.mode, "crop": shape.crop, "stride": shape.stride}
    if shape.mode == "slide":
        entry["windows"] = {f"{h}x{w}": costs.slide_windows((h, w), shape.crop, shape.stride)
                            for (h, w), _ in costs.size_histogram(sizes)}
    return entry


def _load_seconds(dataset, count: int = 3) -> float:
    """Seconds to read and resize one image (the mean of the first ``count``)."""
    start = time.perf_counter()
    for i in range(min(count, len(dataset))):
        dataset[i]
    return (time.perf_counter() - start) / min(count, len(dataset))


def _estimate(job, calibrated: calibration.Calibration, dataset, datamodule, startup_s, device, reference, batch,
              repeats, processes) -> dict:
    measured, shapes, available = calibrated.measured, calibrated.geometries, calibrated.available_bytes
    load_s = _load_seconds(dataset)
    fixed = costs.FixedCosts(startup_s=startup_s, build_s=sum(m.build_s for m in measured.values()),
                             preflight_s=load_s * len(dataset) if datamodule.preflight else 0.0)
    model_costs = {name: costs.ModelCost(m.grad_s or 0.0, m.eval_s, reference, shapes[name].crop,
                                         shapes[name].stride) for name, m in measured.items()}
    rows = []
    for count in sorted({*PROCESSES, processes}):
        shares = [stride_share(range(len(job.sizes)), r, count) for r in range(count)]
        ranks = costs.rank_seconds(job, model_costs, shares, load_s)
        rows.append({"processes": count, "images_max": max(len(s) for s in shares),
                     "slowest_rank_s": max(ranks), "wall_s": costs.wall_seconds(ranks, fixed)})
    per_image = max((m.eval_bytes for name, m in measured.items() if name in job.targets), default=1)
    return {
        "device": str(device), "device_name": calibration.device_name(device), "threads": torch.get_num_threads(),
        "reference": list(reference), "batch": batch, "repeats": repeats,
        "fixed": {"startup_s": fixed.startup_s, "build_s": fixed.build_s, "preflight_s": fixed.preflight_s},
        "load_s": load_s,
        "models": {name: {"grad_s": m.grad_s, "eval_s": m.eval_s, "build_s": m.build_s,
                          "grad_bytes": m.grad_bytes, "eval_bytes": m.eval_bytes,
                          "grad_bytes_windows": {str(k).lower(): v for k, v in m.grad_bytes_windows}}
                   for name, m in measured.items()},
        "estimate": rows,
        "available_bytes": available,
        "eval_fits": per_image * job.eval_chunk <= available,
        "eval_batch_size_max": costs.largest_fitting(max(per_image, 1), available),
    }


def _table(head: tuple[str, ...], rows: list[tuple], indent: str = "  ") -> list[str]:
    """Aligned columns: numbers right-aligned, text left-aligned."""
    cells = [tuple(str(c) for c in row) for row in [head, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    numeric = [all(_number(row[i]) for row in cells[1:]) for i in range(len(head))]
    return [(indent + "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric))).rstrip()
            for row in cells]


def _number(text: str) -> bool:
    return text.split(" ")[0].replace(".", "", 1).isdigit() or text == "-"


def _size(value) -> str:
    return "x".join(str(v) for v in value)


def render(plan: dict) -> str:
    """The plan as the terminal shows it."""
    data, ranks = plan["dataset"], plan["images_per_rank"]
    shard = f", shard {data['shard']} of the job" if data["shard"] else ""
    lines = [f"benchmark plan: {data['name']} {data['split']} ({data['root']}{shard}): {data['images']} images",
             f"  {plan['processes']} process(es) (stride_share, the DDP rule): images per rank "
             f"{', '.join(map(str, ranks)) if len(ranks) <= 8 else _spread(ranks)}; batch size {plan['batch_size']}",
             f"  {len(plan['sources'])} source(s) x {len(plan['attacks'])} attack(s) x {plan['seeds']} seed(s) = "
             f"{plan['conditions']} conditions; {len(plan['targets'])} target(s), each on clean + "
             f"{plan['conditions']} conditions, in forwards of {plan['eval_chunk']} images "
             f"(model.eval_batch_size {plan['eval_batch_size']})",
             "", "passes per image of one run of each attack on one source model (counted by the attack registry;",
             "grad: forward + input backward, eval: forward without autograd, canvas: grad-pass input area / image):"]
    lines += _table(("attack", "grad", "eval", "canvas"),
                    [(name + (" (grad passes stop at the feature layer)" if p["partial"] else ""), p["grad"], p["eval"],
                      f"{p['canvas']:.3f}") for name, p in plan["attacks"].items()])
    t = plan["totals"]
    lines += [f"passes of the job: {t['source_grad']} source grad + {t['source_eval']} source eval (every model of "
              f"an ensemble source counted), {t['target_eval']} target eval", "",
              "input sizes after the resize policy (image headers):"]
    lines += _table(("H x W", "images"), [(f"{s['height']}x{s['width']}", s["images"]) for s in plan["sizes"]])
    rows = []
    for name, m in plan["models"].items():
        shape = "whole" if m["mode"] == "whole" else f"slide, crop {_size(m['crop'])}, stride {_size(m['stride'])}"
        windows = ", ".join(f"{k}: {v}" for k, v in m.get("windows", {}).items()) or "-"
        rows.append((name, ", ".join(m["roles"]), shape, windows))
    lines += ["", "models:"] + _table(("model", "role", "inference", "sliding windows per image"), rows)
    if "calibration" in plan:
        lines += ["", *_render_calibration(plan, plan["calibration"])]
    else:
        lines += ["", "not calibrated (--calibrate false): no time or memory estimate"]
    return "\n".join([*lines, *(f"note: {note}" for note in plan["notes"])])


def _render_calibration(plan: dict, c: dict) -> list[str]:
    fixed = c["fixed"]
    lines = [f"calibration on {c['device']} ({c['device_name']}, {c['threads']} torch threads) at "
             f"{_size(c['reference'])} (the largest input), batch {c['batch']}, median of {c['repeats']} "
             "after a warm-up:"]
    lines += _table(("model", "grad s/image", "eval s/image", "build s", "grad peak MiB/image", "eval peak MiB/image"),
                    [(name, "-" if m["grad_s"] is None else f"{m['grad_s']:.4f}", f"{m['eval_s']:.4f}",
                      f"{m['build_s']:.2f}", "-" if m["grad_bytes"] is None else f"{m['grad_bytes'] / MIB:.1f}",
                      f"{m['eval_bytes'] / MIB:.1f}") for name, m in c["models"].items()])
    lines += [f"fixed: start-up {fixed['startup_s']:.2f} s (twice with several processes: DDP workers start "
              f"again), model building {fixed['build_s']:.2f} s, preflight scan {fixed['preflight_s']:.2f} s; "
              f"loading {c['load_s'] * 1000:.1f} ms per image", "",
              "estimated wall time of the whole job (P processes on P devices like the calibrated one"
              + (f"; on CPU the processes of one machine share its cores: a row assumes P x {c['threads']} cores"
                 if c["device"] == "cpu" else "") + "):"]
    lines += _table(("processes", "images per rank (max)", "slowest rank s", "wall s"),
                    [(f"{r['processes']}" + (" (configured)" if r["processes"] == plan["processes"] else ""),
                      r["images_max"], f"{r['slowest_rank_s']:.1f}", f"{r['wall_s']:.1f}") for r in c["estimate"]])
    lines += ["", "memory (peak above what is held before the pass):"]
    for name, m in c["models"].items():
        if m["grad_bytes"] is not None:
            windows = "".join(f"; checkpoint_windows {k}: {v / MIB:.1f} MiB/image"
                              for k, v in m["grad_bytes_windows"].items())
            lines.append(f"  source grad pass {name}: {m['grad_bytes'] / MIB:.1f} MiB/image, x batch "
                         f"{plan['batch_size']} = {m['grad_bytes'] * plan['batch_size'] / MIB:.1f} MiB{windows}")
    need = max(m["eval_bytes"] for name, m in c["models"].items() if name in plan["targets"])
    verdict = "fits" if c["eval_fits"] else \
        f"does NOT fit: the largest eval_batch_size that fits is {c['eval_batch_size_max']}"
    lines.append(f"  target eval: forwards of {plan['eval_chunk']} images x {need / MIB:.1f} MiB/image = "
                 f"{plan['eval_chunk'] * need / MIB:.0f} MiB of {c['available_bytes'] / MIB:.0f} MiB available: "
                 f"{verdict}")
    return lines


def plan_cli(argv: list[str]) -> int:
    """``benchmark plan [benchmark run options] [--calibrate false] [--repeats N] [--json FILE]``."""
    try:
        cli = check_config(list(argv), PlanCLI)
        plan = make_plan(cli)
    except BenchmarkError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    print(render(plan))
    if cli.config.json:
        Path(cli.config.json).write_text(json.dumps(plan, indent=2) + "\n")
        print(f"wrote {cli.config.json}")
    return 0
