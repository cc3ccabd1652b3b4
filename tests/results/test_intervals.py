"""derive(): metrics, intervals, seed summaries and comparisons against direct resampling computations."""

import statistics

import numpy as np
import pytest
import torch

from benchmark.metrics import scores_from_counts
from benchmark.results import CLEAN, ImageRecord, IntervalInfo
from benchmark.results.intervals import derive

K, N = 4, 15


def _random_records(seed):
    """Clean and attacked records of one target with random per-image counts (class 3 rare)."""
    rng = np.random.default_rng(seed)
    records = []
    conditions = [(None, CLEAN, None), *((("src", a, s) for a in ("a", "b") for s in (0, 1)))]
    for source, condition, run_seed in conditions:
        for i in range(N):
            labelled = rng.integers(0, 40, K)
            labelled[3] = labelled[3] if rng.random() < 0.3 else 0
            inter = (labelled * rng.random(K)).astype(int)
            predicted = inter + rng.integers(0, 10, K)
            classes = [k for k in range(K) if predicted[k] or labelled[k]]
            fooled = None if condition == CLEAN else int(rng.integers(0, 5))
            records.append(ImageRecord(f"im{i:02d}", "t", source, condition, run_seed, tuple(classes),
                                       tuple(int(inter[k]) for k in classes), tuple(int(predicted[k]) for k in classes),
                                       tuple(int(labelled[k]) for k in classes), fooled))
    return records


def _direct(records, key, draws):
    """mIoU of each explicit resample (rows of image indices), from summed counts."""
    by_image = {r.image: r for r in records if r.key == key}
    names = sorted(by_image)
    out = []
    for row in draws:
        inter, pred, gt = [0] * K, [0] * K, [0] * K
        for index in row:
            r = by_image[names[index]]
            for k, i, p, g in zip(r.classes, r.intersection, r.predicted, r.labelled):
                inter[k] += i
                pred[k] += p
                gt[k] += g
        out.append(scores_from_counts(inter, pred, gt, N).miou)
    return np.array(out)


@pytest.fixture(scope="module")
def derived():
    records = _random_records(0)
    info = IntervalInfo.default(resamples=400, seed=5)
    metrics, summaries, comparisons = derive(records, targets=["t"], sources=["src"], attacks=["a", "b"],
                                             seeds=[0, 1], num_classes=K, intervals=info)
    draws = torch.randint(0, N, (400, N), generator=torch.Generator().manual_seed(5)).numpy()
    return records, metrics, summaries, comparisons, draws


def test_intervals_are_percentiles_of_the_direct_resampling(derived):
    records, metrics, _, _, draws = derived
    for record in metrics:
        samples = _direct(records, record.key, draws)
        assert record.miou_ci == pytest.approx(tuple(np.quantile(samples, [0.025, 0.975])), abs=1e-12)


def test_seed_summary_pools_seeds_under_the_same_resamples(derived):
    records, metrics, summaries, _, draws = derived
    summary = next(s for s in summaries if s.condition == "a")
    per_seed = [next(m.miou for m in metrics if m.key == ("t", "src", "a", seed)) for seed in (0, 1)]
    assert summary.miou_mean == pytest.approx(sum(per_seed) / 2) and summary.miou_std == pytest.approx(
        statistics.stdev(per_seed))
    pooled = (_direct(records, ("t", "src", "a", 0), draws) + _direct(records, ("t", "src", "a", 1), draws)) / 2
    assert summary.miou_ci == pytest.approx(tuple(np.quantile(pooled, [0.025, 0.975])), abs=1e-12)


def test_comparison_is_the_paired_difference(derived):
    records, _, summaries, (comparison,), draws = derived
    assert (comparison.first, comparison.second) == ("a", "b")
    mean = {s.condition: s.miou_mean for s in summaries}
    assert comparison.difference == pytest.approx(mean["a"] - mean["b"])
    seed_mean = lambda attack: sum(_direct(records, ("t", "src", attack, s), draws) for s in (0, 1)) / 2  # noqa: E731
    difference = seed_mean("a") - seed_mean("b")
    assert comparison.ci == pytest.approx(tuple(np.quantile(difference, [0.025, 0.975])), abs=1e-12)
    assert comparison.distinguishable == (comparison.ci[0] > 0 or comparison.ci[1] < 0)


def test_an_attack_identical_to_another_on_every_image_differs_by_exactly_zero():
    records = [r for r in _random_records(1) if r.condition != "b"]
    twins = [ImageRecord(r.image, r.target, r.source, "b", r.seed, r.classes, r.intersection, r.predicted,
                         r.labelled, r.fooled) for r in records if r.condition == "a"]
    _, _, (comparison,) = derive(records + twins, targets=["t"], sources=["src"], attacks=["a", "b"], seeds=[0, 1],
                                 num_classes=K, intervals=IntervalInfo.default(resamples=200))
    assert comparison.difference == 0 and comparison.ci == (0.0, 0.0) and not comparison.distinguishable


def test_a_uniformly_stronger_attack_is_distinguishable():
    """b fools every image more than a (half the correct pixels of a): the whole interval is positive."""
    records = [r for r in _random_records(2) if r.condition != "b"]
    weaker = [ImageRecord(r.image, r.target, r.source, "b", r.seed, r.classes, tuple(i // 2 for i in r.intersection),
                          r.predicted, r.labelled, r.fooled) for r in records if r.condition == "a"]
    _, _, (comparison,) = derive(records + weaker, targets=["t"], sources=["src"], attacks=["a", "b"], seeds=[0, 1],
                                 num_classes=K, intervals=IntervalInfo.default(resamples=200))
    assert comparison.ci[0] > 0 and comparison.distinguishable


def test_success_rate_interval_uses_the_clean_correct_pixels_of_each_resample(derived):
    records, metrics, _, _, draws = derived
    record = next(m for m in metrics if m.key == ("t", "src", "b", 1))
    clean = {r.image: sum(r.intersection) for r in records if r.condition == CLEAN}
    fooled = {r.image: r.fooled for r in records if r.key == record.key}
    names = sorted(clean)
    rates = [sum(fooled[names[i]] for i in row) / sum(clean[names[i]] for i in row) for row in draws]
    assert record.success_rate_ci == pytest.approx(tuple(np.quantile(rates, [0.025, 0.975])), abs=1e-12)
