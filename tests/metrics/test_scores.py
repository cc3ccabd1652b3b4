"""SegmentationScores: mmseg IoUMetric definition, checked against hand counts and a NumPy oracle."""

import math

import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassJaccardIndex

from benchmark.metrics import Scores, SegmentationScores, scores_from_confusion
from benchmark.metrics.scores import masked_counts

IGN = 255


def numpy_oracle(preds: np.ndarray, target: np.ndarray, k: int):
    """Independent reference: per-class IoU from boolean masks (None for zero union)."""
    valid = target != IGN
    p, t = preds[valid], target[valid]
    ious = []
    for c in range(k):
        inter = np.logical_and(p == c, t == c).sum()
        union = np.logical_or(p == c, t == c).sum()
        ious.append(None if union == 0 else inter / union)
    defined = [v for v in ious if v is not None]
    return ious, float(np.mean(defined)), float((p == t).mean())


def hand_case():
    # 4 classes. Class 2 absent from GT and predictions (undefined); class 3 predicted but never in GT.
    target = torch.tensor([[[0, 0, 1, 1],
                            [0, IGN, 1, IGN]]])
    preds = torch.tensor([[[0, 1, 1, 3],
                           [0, 3, 1, 2 * 0 + 3]]])
    # preds at ignored pixels (3) must not count.
    return preds, target


@pytest.mark.parametrize("validate_args", [True, False], ids=["torchmetrics", "sync-free"])
def test_hand_built_confusion_matrix(validate_args):
    preds, target = hand_case()
    m = SegmentationScores(num_classes=4, validate_args=validate_args)
    m.update(preds, target)
    # Valid pixels: GT 0 -> pred 0,1,0 ; GT 1 -> pred 1,3,1.
    expected = torch.tensor([[2, 1, 0, 0],
                             [0, 2, 0, 1],
                             [0, 0, 0, 0],
                             [0, 0, 0, 0]])
    assert torch.equal(m.confmat, expected)
    s = m.compute()
    assert isinstance(s, Scores)
    # IoU0 = 2 / (3 + 2 - 2) = 2/3 ; IoU1 = 2 / (3 + 3 - 2) = 1/2 ; IoU2 undefined ; IoU3 = 0 / 1 = 0
    assert s.per_class_iou == (2 / 3, 1 / 2, None, 0.0)
    assert s.miou == pytest.approx((2 / 3 + 1 / 2 + 0.0) / 3, abs=1e-15)
    assert s.pixel_accuracy == pytest.approx(4 / 6, abs=1e-15)
    assert s.num_images == 1
    assert s.num_pixels == 6
    assert all(isinstance(v, (float, type(None))) for v in s.per_class_iou)
    assert type(s.miou) is float and type(s.num_images) is int


def test_logits_equal_labels():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7, 9)
    target = torch.randint(0, 5, (2, 7, 9))
    target[0, :2] = IGN
    a, b = SegmentationScores(5), SegmentationScores(5)
    a.update(logits, target)
    b.update(logits.argmax(1), target)
    assert a.compute() == b.compute()


@pytest.mark.parametrize("validate_args", [True, False], ids=["torchmetrics", "sync-free"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_numpy_oracle(seed, validate_args):
    g = torch.Generator().manual_seed(seed)
    k = 6
    target = torch.randint(0, 4, (3, 11, 13), generator=g)  # classes 4, 5 never in GT
    target[torch.rand(target.shape, generator=g) < 0.2] = IGN
    preds = torch.randint(0, 5, (3, 11, 13), generator=g)  # class 4 predicted but absent; 5 nowhere
    m = SegmentationScores(k, validate_args=validate_args)
    m.update(preds, target)
    s = m.compute()
    ious, miou, acc = numpy_oracle(preds.numpy(), target.numpy(), k)
    assert s.per_class_iou[5] is None and ious[5] is None
    assert s.per_class_iou[4] == 0.0
    for got, want in zip(s.per_class_iou, ious):
        assert (got is None) == (want is None)
        if want is not None:
            assert got == pytest.approx(want, abs=1e-12)
    assert s.miou == pytest.approx(miou, abs=1e-12)
    assert s.pixel_accuracy == pytest.approx(acc, abs=1e-12)


def test_accumulation_equals_concatenation():
    g = torch.Generator().manual_seed(3)
    preds = torch.randint(0, 4, (5, 6, 8), generator=g)
    target = torch.randint(0, 4, (5, 6, 8), generator=g)
    target[1, 2:] = IGN
    many, one = SegmentationScores(4), SegmentationScores(4)
    for lo, hi in [(0, 1), (1, 3), (3, 5)]:
        many.update(preds[lo:hi], target[lo:hi])
    one.update(preds, target)
    assert torch.equal(many.confmat, one.confmat)
    assert many.compute() == one.compute()
    assert many.compute().num_images == 5


def test_states_are_sum_reduced_like_two_ranks():
    """Two "ranks" each see half the images; merging their states (the reduction DDP sync applies)
    gives exactly the single-process counts, images included."""
    g = torch.Generator().manual_seed(4)
    preds = torch.randint(0, 3, (4, 5, 5), generator=g)
    target = torch.randint(0, 3, (4, 5, 5), generator=g)
    rank0, rank1, single = SegmentationScores(3), SegmentationScores(3), SegmentationScores(3)
    rank0.update(preds[:3], target[:3])
    rank1.update(preds[3:], target[3:])
    single.update(preds, target)
    rank0.merge_state(rank1)
    assert rank0.compute() == single.compute()
    assert rank0.compute().num_images == 4
    assert rank0.confmat.dtype == torch.int64


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_reset_clears_counts():
    m = SegmentationScores(3)
    m.update(torch.zeros(2, 2, 2, dtype=torch.long), torch.zeros(2, 2, 2, dtype=torch.long))
    m.reset()
    s = m.compute()
    assert s.num_images == 0 and s.num_pixels == 0
    assert math.isnan(s.miou) and math.isnan(s.pixel_accuracy)
    assert s.per_class_iou == (None, None, None)


def test_all_ignored_batch_counts_image_but_no_pixel():
    m = SegmentationScores(3)
    m.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.full((1, 2, 2), IGN))
    s = m.compute()
    assert s.num_images == 1 and s.num_pixels == 0 and math.isnan(s.miou)


def test_shape_mismatch_rejected():
    m = SegmentationScores(3)
    with pytest.raises(ValueError, match="preds"):
        m.update(torch.zeros(1, 3, 2, dtype=torch.long), torch.zeros(1, 2, 2, dtype=torch.long))


def test_scores_from_confusion_requires_square():
    with pytest.raises(ValueError, match="K x K"):
        scores_from_confusion(torch.zeros(2, 3, dtype=torch.long), 0)


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_torchmetrics_jaccard_macro(seed):
    """torchmetrics 1.9.0 ``MulticlassJaccardIndex(average="macro", ignore_index=255)``.

    Matches: the mean (1.9.0 gives zero-union classes zero weight, as mmseg leaves them out), up to
    float32 rounding in torchmetrics. Differs: its per-class output (``average="none"``) reports 0.0
    for a zero-union class where we report None, and it returns a float32 tensor.
    """
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, 4, (2, 9, 10), generator=g)
    target[torch.rand(target.shape, generator=g) < 0.25] = IGN
    preds = torch.randint(0, 5, (2, 9, 10), generator=g)
    ours = SegmentationScores(6)
    ours.update(preds, target)
    s = ours.compute()
    macro = MulticlassJaccardIndex(num_classes=6, average="macro", ignore_index=IGN)
    macro.update(preds, target)
    assert s.miou == pytest.approx(float(macro.compute()), abs=1e-6)
    per = MulticlassJaccardIndex(num_classes=6, average="none", ignore_index=IGN)
    per.update(preds, target)
    per_tm = per.compute().tolist()
    assert s.per_class_iou[5] is None and per_tm[5] == 0.0
    for got, want in zip(s.per_class_iou[:5], per_tm[:5]):
        assert got == pytest.approx(want, abs=1e-6)


def test_masked_counts_is_a_bincount_of_the_kept_entries():
    g = torch.Generator().manual_seed(3)
    index = torch.randint(0, 9, (4, 7, 5), generator=g)
    keep = torch.rand(index.shape, generator=g) < 0.6
    got = masked_counts(index, keep, 9)
    assert got.dtype == torch.long and got.shape == (9,)
    assert torch.equal(got, torch.bincount(index[keep], minlength=9))
    assert torch.equal(masked_counts(index, torch.zeros_like(keep), 9), torch.zeros(9, dtype=torch.long))
