"""Per-image audit records: they reproduce the dataset-level metrics exactly and expose tampering."""

import dataclasses

import pytest
import torch

from benchmark.errors import ResultError
from benchmark.metrics import AttackSuccessRate, SegmentationScores, per_image_counts
from benchmark.results import CLEAN, ImageRecord, IntervalInfo
from benchmark.results.audit import check_consistency, compare_images
from benchmark.results.intervals import derive
from benchmark.results.leaderboard import check_submittable
from tests.results.results_factory import build_result


def _records(preds, labels, condition, num_classes, clean=None):
    inter, pred, gt = (t.tolist() for t in per_image_counts(preds, labels, num_classes))
    out = []
    for n in range(labels.shape[0]):
        classes = [k for k in range(num_classes) if pred[n][k] or gt[n][k]]
        fooled = None
        if clean is not None:
            valid = labels[n] != 255
            fooled = int((valid & (clean[n] == labels[n]) & (preds[n] != labels[n])).sum())
        source, seed = (None, None) if condition == CLEAN else ("src", 0)
        out.append(ImageRecord(f"im{n}", "t", source, condition, seed, tuple(classes),
                               tuple(inter[n][k] for k in classes), tuple(pred[n][k] for k in classes),
                               tuple(gt[n][k] for k in classes), fooled))
    return out


def test_per_image_counts_match_the_confusion_matrix_and_metrics_exactly():
    g = torch.Generator().manual_seed(0)
    k = 5
    labels = torch.randint(0, k - 1, (6, 9, 13), generator=g)  # class 4 never labelled
    labels[labels == 3] = 255                                   # ignored pixels
    clean = torch.where(torch.rand(labels.shape, generator=g) < 0.7, labels.clamp(max=k - 1),
                        torch.randint(0, k, labels.shape, generator=g))
    adv = torch.where(torch.rand(labels.shape, generator=g) < 0.4, clean, torch.randint(0, k, labels.shape, generator=g))
    images = _records(clean, labels, CLEAN, k) + _records(adv, labels, "pgd", k, clean=clean)
    metrics, _, _ = derive(images, targets=["t"], sources=["src"], attacks=["pgd"], seeds=[0], num_classes=k,
                           intervals=IntervalInfo.default(resamples=50))
    derived = {(r.target, r.condition): r for r in metrics}
    for condition, preds in ((CLEAN, clean), ("pgd", adv)):
        metric = SegmentationScores(k)
        metric.update(preds, labels)
        scores = metric.compute()
        record = derived[("t", condition)]
        assert record.miou == scores.miou and record.per_class_iou == scores.per_class_iou
        assert record.pixel_accuracy == scores.pixel_accuracy and record.num_images == 6
    success = AttackSuccessRate()
    success.update(clean, adv, labels)
    assert derived[("t", "pgd")].success_rate == success.compute()


def test_a_tampered_metric_is_refused_at_submission():
    result = build_result()
    check_submittable(result, "ok.json")
    record = result.metrics[1]
    forged = dataclasses.replace(result, metrics=(result.metrics[0], dataclasses.replace(record, miou=record.miou + 0.1),
                                                  *result.metrics[2:]))
    with pytest.raises(ResultError, match="altered"):
        check_submittable(forged, "forged.json")
    with pytest.raises(ResultError, match="altered"):
        check_consistency(forged, "forged.json")


@pytest.mark.parametrize("field", ["miou_ci", "summaries", "comparisons"])
def test_a_tampered_interval_summary_or_comparison_is_refused(field):
    result = build_result(seeds=(0, 1))
    if field == "miou_ci":
        record = result.metrics[1]
        changed = {"metrics": (result.metrics[0], dataclasses.replace(record, miou_ci=(0.0, 1.0)), *result.metrics[2:])}
    elif field == "summaries":
        changed = {"summaries": (dataclasses.replace(result.summaries[0], miou_mean=0.5), *result.summaries[1:])}
    else:
        first = result.comparisons[0]
        changed = {"comparisons": (dataclasses.replace(first, difference=first.difference + 0.01), *result.comparisons[1:])}
    with pytest.raises(ResultError, match="altered"):
        check_consistency(dataclasses.replace(result, **changed), "forged.json")


def test_compare_images_reports_only_real_differences():
    a = ImageRecord("x", "t", "s", "pgd", 0, (0, 1), (5, 3), (6, 4), (7, 3), 2)
    same = ImageRecord("x", "t", "s", "pgd", 0, (0, 1), (5, 3), (6, 4), (7, 3), 2)
    moved = ImageRecord("x", "t", "s", "pgd", 0, (0, 1), (4, 3), (6, 4), (7, 3), 2)
    assert compare_images([a], [same]) == []
    assert len(compare_images([a], [moved])) == 1
    assert compare_images([a], [moved], tolerance=0.1) == []  # 1 pixel of 10 valid
    assert "not in the entry" in compare_images([], [a])[0]
