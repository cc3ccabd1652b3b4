"""The cost of a job: pure arithmetic over image sizes, pass counts and calibrated seconds per pass.

No torch and no I/O here: ``benchmark plan`` (:mod:`benchmark.lightning.plan`) counts, measures and
prints; these functions compute, and tests check them by hand.

The model of a job (docs/how-to/cluster.md, "Cost plan"):

- every attack runs on every source with every seed: C = sources x attacks x seeds conditions, and
  every target evaluates each image once clean and once per condition;
- image i of size (H, W) costs, on the rank that holds it,

      attack_i  = sum over sources, attacks:  seeds x sum over the source's models m of
                  (grad x canvas x g_m + eval x e_m) x scale_m(H, W)
      targets_i = sum over targets t of (1 + C) x e_t x scale_t(H, W)
      load_i    = the seconds to read and resize one image

  with g_m / e_m model m's calibrated seconds per image of a grad pass (forward + input backward) /
  eval pass (forward without autograd) at its reference size, and scale_m the ratio of pixel areas
  (whole inference) or of sliding windows (slide inference) between (H, W) and the reference;
- a rank's time is the sum over its images; the wall time is the slowest rank plus the fixed costs:
  start-up (imports, parsing), model building, the preflight scan of the data and, with several
  processes, a second start-up (DDP workers start by running the command again).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

Size = tuple[int, int]  # (H, W)


class PassCount(Protocol):
    """Source passes per image of one attack run (:class:`benchmark.attacks.passes.Passes`)."""

    grad: int
    eval: int
    canvas: float


def slide_windows(size: Size, crop: Size, stride: Size) -> int:
    """Sliding windows mmseg's ``slide_inference`` runs on an image of ``size`` (all (H, W)):
    ``h_grids = max(H - h_crop + h_stride - 1, 0) // h_stride + 1``, the same for W, times each other."""
    (height, width), (h_crop, w_crop), (h_stride, w_stride) = size, crop, stride
    h_grids = max(height - h_crop + h_stride - 1, 0) // h_stride + 1
    w_grids = max(width - w_crop + w_stride - 1, 0) // w_stride + 1
    return h_grids * w_grids


@dataclass(frozen=True)
class ModelCost:
    """Calibrated seconds per image of one model at its reference size.

    Args:
        grad_s: seconds of a forward + input backward per image (0.0 for a model that is only a target).
        eval_s: seconds of a forward without autograd per image.
        reference: the (H, W) the passes were timed at.
        crop, stride: the (H, W) window and stride of slide inference; None for whole inference.
    """

    grad_s: float
    eval_s: float
    reference: Size
    crop: Size | None = None
    stride: Size | None = None

    def scale(self, size: Size) -> float:
        """Cost at ``size`` relative to the reference: window count ratio (slide), else area ratio."""
        if self.crop is not None and self.stride is not None:
            return slide_windows(size, self.crop, self.stride) / slide_windows(self.reference, self.crop, self.stride)
        return (size[0] * size[1]) / (self.reference[0] * self.reference[1])


@dataclass(frozen=True)
class Job:
    """What a job computes, without timings.

    Args:
        sizes: the input (H, W) of every image, in dataset order.
        sources: each source as the tuple of its models (one model, or an ensemble's members).
        attacks: condition name -> its passes per image on one source model.
        seeds: attack seeds (every attack runs once per seed).
        targets: target model names.
        batch_size: images per batch.
        eval_batch_size: images per target forward (None: every stacked condition of a batch at once).
    """

    sizes: tuple[Size, ...]
    sources: tuple[tuple[str, ...], ...]
    attacks: Mapping[str, PassCount]
    seeds: int
    targets: tuple[str, ...]
    batch_size: int = 1
    eval_batch_size: int | None = None

    @property
    def conditions(self) -> int:
        """C = sources x attacks x seeds."""
        return len(self.sources) * len(self.attacks) * self.seeds

    @property
    def eval_chunk(self) -> int:
        """Images per target forward: the clean and C adversarial sets of a batch are stacked
        ((1 + C) x batch_size images) and cut into chunks of ``eval_batch_size``."""
        stacked = (1 + self.conditions) * self.batch_size
        return stacked if self.eval_batch_size is None else min(self.eval_batch_size, stacked)


@dataclass(frozen=True)
class Totals:
    """Passes of the whole job (source passes summed over the models of ensemble sources)."""

    images: int
    conditions: int
    source_grad: int
    source_eval: int
    target_eval: int


def totals(job: Job, images: int | None = None) -> Totals:
    """Whole-job pass counts of ``job`` (of ``images`` images when given, else of ``job.sizes``)."""
    members = sum(len(source) for source in job.sources)
    grad = sum(p.grad for p in job.attacks.values()) * job.seeds * members
    evals = sum(p.eval for p in job.attacks.values()) * job.seeds * members
    n = len(job.sizes) if images is None else images
    return Totals(n, job.conditions, n * grad, n * evals, n * len(job.targets) * (1 + job.conditions))


def image_seconds(job: Job, costs: Mapping[str, ModelCost], size: Size, load_s: float = 0.0) -> float:
    """Seconds one image of ``size`` costs its rank: attacks, target evaluations and loading."""
    attack = 0.0
    for source in job.sources:
        for model in source:
            cost = costs[model]
            per_run = sum(p.grad * p.canvas * cost.grad_s + p.eval * cost.eval_s for p in job.attacks.values())
            attack += job.seeds * per_run * cost.scale(size)
    evaluate = sum((1 + job.conditions) * costs[t].eval_s * costs[t].scale(size) for t in job.targets)
    return attack + evaluate + load_s


def rank_seconds(job: Job, costs: Mapping[str, ModelCost], shares: Sequence[Sequence[int]],
                 load_s: float = 0.0) -> list[float]:
    """Seconds of each rank, given each rank's image indices (``shares[r]``)."""
    per_size = {size: image_seconds(job, costs, size, load_s) for size in set(job.sizes)}
    return [sum(per_size[job.sizes[i]] for i in share) for share in shares]


@dataclass(frozen=True)
class FixedCosts:
    """Seconds a job pays once, whatever its images.

    Args:
        startup_s: from the command to a parsed configuration (interpreter, imports, parsing).
        build_s: building every model (imports of mmseg, checkpoints' checksums and loading).
        preflight_s: the scan of every image before the Trainer starts (0 with data.preflight false).
    """

    startup_s: float
    build_s: float
    preflight_s: float = 0.0

    def total(self, processes: int) -> float:
        """Fixed seconds of a job with ``processes`` processes (DDP workers start up once more)."""
        return self.startup_s * (2 if processes > 1 else 1) + self.build_s + self.preflight_s


def wall_seconds(ranks: Sequence[float], fixed: FixedCosts) -> float:
    """The job's wall time: the fixed costs plus its slowest rank."""
    return fixed.total(len(ranks)) + max(ranks, default=0.0)


def size_histogram(sizes: Sequence[Size]) -> list[tuple[Size, int]]:
    """The distinct sizes with their image counts, most frequent first (then larger first)."""
    counts = Counter(tuple(size) for size in sizes)
    return sorted(counts.items(), key=lambda item: (-item[1], -item[0][0] * item[0][1], item[0]))


def largest_size(sizes: Sequence[Size]) -> Size:
    """The size with the most pixels (ties: the first in dataset order)."""
    return max(sizes, key=lambda size: size[0] * size[1])


def largest_fitting(per_image_bytes: float, available_bytes: float) -> int:
    """The most images whose memory (``per_image_bytes`` each) fits in ``available_bytes``."""
    return math.floor(available_bytes / per_image_bytes) if per_image_bytes > 0 else 0
