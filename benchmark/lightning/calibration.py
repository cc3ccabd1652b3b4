"""What ``benchmark plan`` measures: each model built and run through the same adapter as a run.

:func:`calibrate` builds every model with :func:`benchmark.models.build_zoo_model` (its checkpoint
checked and loaded, ``model.mode``, ``model.checkpoint_windows`` for slide-mode sources and
``model.channels_last`` as in a run) and times, after a warm-up, a grad pass (forward, cross-entropy,
input backward, under ``attack.autocast``) and an eval pass (forward without autograd) of each source, and an eval
pass of each target, on a batch at the reference size; it also measures the peak memory of one pass
per image. CPU: the peak resident set (``VmHWM`` after ``/proc/self/clear_refs``, with glibc's mmap
threshold fixed so freed tensors leave the resident set); CUDA: ``torch.cuda.max_memory_allocated``
after ``reset_peak_memory_stats``, with a synchronisation around every timing.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmark.costs import Size

MMAP_THRESHOLD = 131072  # bytes: glibc then returns every freed tensor of 128 KiB or more at once


@dataclass(frozen=True)
class Geometry:
    """How a model runs inference: ``mode`` "whole" or "slide" with its window ``crop`` and ``stride``."""

    mode: str
    crop: Size | None = None
    stride: Size | None = None


@dataclass(frozen=True)
class Measured:
    """One model's calibration at the reference size (seconds and bytes per image).

    ``grad_s``, ``grad_bytes``: None for a model that is only a target. ``grad_bytes_windows``: the grad
    pass's peak with ``checkpoint_windows`` on and off (slide-mode sources only, else empty)."""

    build_s: float
    eval_s: float
    eval_bytes: int
    grad_s: float | None = None
    grad_bytes: int | None = None
    grad_bytes_windows: tuple[tuple[bool, int], ...] = ()


@dataclass(frozen=True)
class Calibration:
    """Every model's :class:`Measured` and :class:`Geometry` by name, and the memory still available on
    the device while all of them are built (as in a run)."""

    measured: dict[str, Measured]
    geometries: dict[str, Geometry]
    available_bytes: int


def device_for(accelerator: str | None) -> torch.device:
    """The device a run with ``trainer.accelerator`` uses for its first process."""
    name = str(accelerator or "auto").lower()
    if name in ("gpu", "cuda") or (name == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", 0)
    return torch.device("mps") if name == "mps" else torch.device("cpu")


def device_name(device: torch.device) -> str:
    """The device's model name, as a result's numerics record it (the GPU's; on CPU /proc/cpuinfo's)."""
    from benchmark.results.schema import NumericsInfo

    return NumericsInfo.current(device, autocast=None).device_name


def geometry(net) -> Geometry:
    """The inference geometry of a built model (a slide-mode mmseg segmentor's ``test_cfg``)."""
    if net.mode != "slide":
        return Geometry("whole")
    cfg = net.segmentor.test_cfg
    return Geometry("slide", tuple(cfg["crop_size"]), tuple(cfg["stride"]))


def geometry_without_weights(name: str, mode: str | None) -> Geometry:
    """The geometry of zoo model ``name`` without its checkpoint (random weights, or a factory's own), built
    as :func:`benchmark.models.build_zoo_model` builds it."""
    from benchmark.models import build_zoo_model

    return geometry(build_zoo_model(name, mode=mode, weights=False))


def available_bytes(device: torch.device) -> int:
    """Memory free for more work: CUDA total minus what is allocated; CPU ``MemAvailable``."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory - torch.cuda.memory_allocated(device)
    return _meminfo_kib("MemAvailable", Path("/proc/meminfo")) * 1024


def _meminfo_kib(field: str, path: Path = Path("/proc/self/status")) -> int:
    return int(re.search(rf"{field}:\s+(\d+) kB", path.read_text()).group(1))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _fix_mmap_threshold() -> None:
    """A fixed glibc mmap threshold (as ``MALLOC_MMAP_THRESHOLD_`` would set), so the resident set
    follows the live tensors; nothing happens where glibc is absent."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD


def _release_free_pages() -> None:
    """Give the free pages inside glibc's heaps back (``malloc_trim(0)``): memory freed before the
    threshold was fixed would otherwise be reused without raising the resident set."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def peak_bytes(run, device: torch.device, warm_up: bool = True) -> int:
    """Bytes ``run()`` needs at its peak above what is allocated (CUDA) or resident (CPU) before it, in
    its steady state (``warm_up``: one call first, so caches and workspaces it keeps are not counted).
    On the CPU the figure follows live tensors only with glibc's mmap threshold fixed
    (``MALLOC_MMAP_THRESHOLD_``), as the callers set it."""
    if warm_up:
        run()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        run()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    _release_free_pages()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = _meminfo_kib("VmRSS")
    run()
    return (_meminfo_kib("VmHWM") - before) * 1024


def seconds(run, device: torch.device, repeats: int) -> float:
    """Median seconds of ``run()`` over ``repeats`` calls after one warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        run()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _passes(net, images: torch.Tensor, autocast: str | None):
    """(grad pass, eval pass) of ``net`` on ``images``, under ``autocast`` ("bf16" | "fp16" | None).

    The grad pass is an attack's pass: forward, per-pixel cross-entropy to labels, input backward."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(autocast)
    generator = torch.Generator().manual_seed(1)
    labels = torch.randint(0, net.num_classes, (images.shape[0], *images.shape[-2:]), generator=generator)
    labels = labels.to(images.device)

    def cast():
        return torch.autocast(images.device.type, dtype=dtype, enabled=dtype is not None)

    def grad_pass() -> None:
        x = images.detach().clone().requires_grad_(True)
        with torch.enable_grad(), cast():
            logits = net(x)
        loss = torch.nn.functional.cross_entropy(logits.float(), labels, ignore_index=255, reduction="sum")
        torch.autograd.grad(loss, x)

    def eval_pass() -> None:
        with torch.no_grad(), cast():
            net(images)

    return grad_pass, eval_pass


def _build(name: str, device: torch.device, mode: str | None, checkpoint_windows: bool, channels_last: bool):
    from benchmark.models import build_zoo_model

    net = build_zoo_model(name, device=device, mode=mode, checkpoint_windows=checkpoint_windows)
    return net.use_channels_last() if channels_last else net


def calibrate(names: list[str], sources: set[str], size: Size, batch: int, device: torch.device, *,
              mode: str | None = None, checkpoint_windows: bool = False, channels_last: bool = False,
              autocast: str | None = None, repeats: int = 2) -> Calibration:
    """Build every model of ``names`` as a run does and measure it on ``batch`` random images of ``size``.

    Sources get a grad and an eval pass under ``autocast`` (a source that is also a target has its eval
    pass timed once, under ``autocast``), the others an eval pass in fp32. The models stay built while the others are
    measured, as in a run. Every timing comes before the first memory measurement: on CPU the latter
    fixes glibc's mmap threshold for the rest of the process, which makes every large tensor fresh
    (zeroed) pages and the passes slower than in a run."""
    images = torch.rand(batch, 3, *size, generator=torch.Generator().manual_seed(0)).to(device)
    nets, timed = {}, {}
    for name in names:
        start = time.perf_counter()
        nets[name] = _build(name, device, mode, checkpoint_windows and name in sources, channels_last)
        _sync(device)
        timed[name] = {"build_s": time.perf_counter() - start}
    shapes = {name: geometry(net) for name, net in nets.items()}
    passes = {name: _passes(net, images, autocast if name in sources else None) for name, net in nets.items()}
    for name, (grad_pass, eval_pass) in passes.items():
        timed[name]["eval_s"] = seconds(eval_pass, device, repeats) / batch
        if name in sources:
            timed[name]["grad_s"] = seconds(grad_pass, device, repeats) / batch
    if device.type == "cpu":
        _fix_mmap_threshold()
    measured = {}
    for name, (grad_pass, eval_pass) in passes.items():
        fields = {**timed[name], "eval_bytes": peak_bytes(eval_pass, device) // batch}
        if name in sources:
            fields["grad_bytes"] = peak_bytes(grad_pass, device) // batch
            if shapes[name].mode == "slide":  # the same pass with window checkpointing flipped
                other = _passes(_build(name, device, mode, not checkpoint_windows, channels_last), images, autocast)
                fields["grad_bytes_windows"] = ((checkpoint_windows, fields["grad_bytes"]),
                                                (not checkpoint_windows, peak_bytes(other[0], device) // batch))
                del other  # a run holds one copy of each model
        measured[name] = Measured(**fields)
    return Calibration(measured, shapes, available_bytes(device))
