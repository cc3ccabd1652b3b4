"""Paired bootstrap over images for dataset-level segmentation scores (pure torch).

A run's numbers come from one sample of images; the bootstrap asks how much they would move on another
sample of the same size. Each resample draws N images with replacement (the same draw for every
target, condition, source and seed of a run: *paired*), and the statistic is recomputed *at the
dataset level* on the resampled counts -- mIoU from summed per-class counts, as mmseg computes it,
never a mean of per-image IoUs. The interval is the percentile interval of the resampled statistic
(quantiles with linear interpolation, numpy's default).

Inputs are per-image count tables (rows in one fixed image order):
``intersection``, ``predicted``, ``labelled`` (N, K) and, for success rates, ``fooled`` and
``clean_correct`` (N,). A resample is a weight row (how often each image was drawn); summed counts
are ``weights @ counts``, exact in float64 for any realistic pixel count.

Example:
    >>> weights = resample_weights(num_images=40, resamples=1000, seed=0)
    >>> samples = miou_samples(weights, inter, pred, gt)        # (1000,)
    >>> low, high = percentile_interval(samples, level=0.95)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

DEFAULT_RESAMPLES = 1000
DEFAULT_LEVEL = 0.95
METHOD = "paired percentile bootstrap over images, dataset-level scores recomputed per resample"


def resample_weights(num_images: int, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> Tensor:
    """(resamples, num_images) float64 draw counts: row b says how often each image is in resample b.

    Deterministic in (num_images, resamples, seed): a CPU generator, the same on every machine.
    """
    if num_images < 1 or resamples < 1:
        raise ValueError(f"need at least one image and one resample, got {num_images} and {resamples}")
    generator = torch.Generator().manual_seed(seed)
    draws = torch.randint(0, num_images, (resamples, num_images), generator=generator)
    weights = torch.zeros(resamples, num_images, dtype=torch.float64)
    return weights.scatter_add_(1, draws, torch.ones_like(draws, dtype=torch.float64))


def miou_samples(weights: Tensor, intersection: Tensor, predicted: Tensor, labelled: Tensor) -> Tensor:
    """mIoU of every resample: (B,) from weights (B, N) and per-image counts (N, K).

    A class whose union is zero in a resample is left out of that resample's mean (mmseg's rule);
    a resample without any defined class gives NaN.
    """
    inter, pred, gt = (weights @ counts.to(torch.float64) for counts in (intersection, predicted, labelled))
    union = pred + gt - inter
    defined = union > 0
    iou = torch.where(defined, inter / union.clamp(min=1), torch.zeros_like(inter))
    return iou.sum(1) / defined.sum(1)


def ratio_samples(weights: Tensor, numerator: Tensor, denominator: Tensor) -> Tensor:
    """sum(numerator) / sum(denominator) of every resample (e.g. fooled / clean-correct pixels): (B,)."""
    top, bottom = weights @ numerator.to(torch.float64), weights @ denominator.to(torch.float64)
    return torch.where(bottom > 0, top / bottom.clamp(min=1), torch.full_like(top, math.nan))


def percentile_interval(samples: Tensor, level: float = DEFAULT_LEVEL) -> tuple[float, float] | None:
    """The central ``level`` percentile interval of the finite samples; None if there are none."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    finite = samples[torch.isfinite(samples)]
    if finite.numel() == 0:
        return None
    tail = (1 - level) / 2
    low, high = torch.quantile(finite, torch.tensor([tail, 1 - tail], dtype=finite.dtype))
    return float(low), float(high)
