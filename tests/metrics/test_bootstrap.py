"""The paired bootstrap: against a direct resampling computation, and on cases whose answer is known."""

import numpy as np
import pytest
import torch

from benchmark.metrics import scores_from_counts
from benchmark.metrics.bootstrap import miou_samples, percentile_interval, ratio_samples, resample_weights


def _counts(n, k, seed):
    g = torch.Generator().manual_seed(seed)
    gt = torch.randint(0, 50, (n, k), generator=g)
    gt[:, -1] = torch.where(torch.rand(n, generator=g) < 0.3, gt[:, -1], torch.zeros(n, dtype=torch.long))  # rare class
    inter = (gt.float() * torch.rand(n, k, generator=g)).long()
    pred = inter + torch.randint(0, 20, (n, k), generator=g)
    return inter, pred, gt


def test_weights_are_draw_counts_of_seeded_resamples():
    weights = resample_weights(7, resamples=300, seed=3)
    assert weights.shape == (300, 7) and torch.all(weights.sum(1) == 7)
    assert torch.equal(weights, resample_weights(7, resamples=300, seed=3))
    assert not torch.equal(weights, resample_weights(7, resamples=300, seed=4))
    assert abs(float(weights.mean()) - 1.0) < 1e-12 and float(weights.var(0).mean()) == pytest.approx(6 / 7, rel=0.2)


def test_miou_samples_equal_dataset_level_miou_of_each_explicit_resample():
    inter, pred, gt = _counts(12, 5, seed=0)
    weights = resample_weights(12, resamples=50, seed=1)
    samples = miou_samples(weights, inter, pred, gt)
    rng = torch.Generator().manual_seed(1)
    draws = torch.randint(0, 12, (50, 12), generator=rng)  # the same draws, used directly
    for b in range(50):
        chosen = draws[b]
        expected = scores_from_counts(inter[chosen].sum(0).tolist(), pred[chosen].sum(0).tolist(),
                                      gt[chosen].sum(0).tolist(), 12).miou
        assert float(samples[b]) == pytest.approx(expected, abs=1e-12)  # dataset level, not per-image IoUs


def test_a_class_absent_from_a_resample_is_left_out_of_its_mean():
    inter = torch.tensor([[5, 0], [5, 3]])
    pred = torch.tensor([[5, 0], [5, 3]])
    gt = torch.tensor([[5, 0], [5, 3]])
    weights = torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]], dtype=torch.float64)
    assert miou_samples(weights, inter, pred, gt).tolist() == [1.0, 1.0, 1.0]  # not 0.5 for the first
    predicted_not_labelled = torch.tensor([[5, 1], [5, 0]])
    assert miou_samples(weights[:1], inter, predicted_not_labelled, gt).tolist() == [0.5]  # IoU 0 counts


def test_identical_images_give_a_zero_width_interval():
    inter, pred, gt = (t.repeat(20, 1) for t in _counts(1, 4, seed=2))
    samples = miou_samples(resample_weights(20, 200, 0), inter, pred, gt)
    low, high = percentile_interval(samples)
    point = scores_from_counts(inter.sum(0).tolist(), pred.sum(0).tolist(), gt.sum(0).tolist(), 20).miou
    assert low == pytest.approx(point, abs=1e-12) and high == pytest.approx(point, abs=1e-12)


def test_interval_of_a_proportion_matches_its_known_sampling_spread():
    """Images of one pixel each, correct with probability p: the success ratio is a binomial proportion,
    whose 95 % interval is about p +- 1.96 sqrt(p (1 - p) / n)."""
    n, p = 2000, 0.3
    rng = np.random.default_rng(0)
    fooled = torch.from_numpy((rng.random(n) < p).astype(np.int64))
    correct = torch.ones(n, dtype=torch.int64)
    low, high = percentile_interval(ratio_samples(resample_weights(n, 2000, 0), fooled, correct))
    centre = float(fooled.float().mean())
    half = 1.96 * (centre * (1 - centre) / n) ** 0.5
    assert low == pytest.approx(centre - half, abs=0.004) and high == pytest.approx(centre + half, abs=0.004)


def test_percentile_interval_uses_linear_quantiles_and_ignores_nan():
    samples = torch.tensor([float("nan"), *range(101)], dtype=torch.float64)
    assert percentile_interval(samples, 0.9) == pytest.approx((5.0, 95.0), abs=1e-12)
    assert percentile_interval(torch.tensor([0.0, 10.0], dtype=torch.float64), 0.5) == pytest.approx((2.5, 7.5))
    assert percentile_interval(torch.tensor([float("nan")]), 0.9) is None
    with pytest.raises(ValueError):
        percentile_interval(samples, 1.5)
