"""AttackSuccessRate on hand-made cases."""

import math

import pytest
import torch

from benchmark.metrics import AttackSuccessRate

IGN = 255


def test_hand_case():
    target = torch.tensor([[[0, 1, 2, IGN, 1]]])
    clean = torch.tensor([[[0, 1, 0, 2, 1]]])  # correct at 0, 1, 4 ; wrong at 2 ; pixel 3 ignored
    adv = torch.tensor([[[1, 1, 2, 0, 0]]])  # fooled at 0 and 4 ; pixel 2 "fixed" does not count
    m = AttackSuccessRate()
    m.update(clean, adv, target)
    assert int(m.clean_correct) == 3 and int(m.fooled) == 2
    assert m.compute() == pytest.approx(2 / 3, abs=1e-15)


def test_logits_accepted_and_accumulate():
    target = torch.tensor([[[0, 1]], [[1, IGN]]])
    clean_logits = torch.zeros(2, 2, 1, 2)
    clean_logits[0, 0, 0, 0] = clean_logits[0, 1, 0, 1] = clean_logits[1, 1, 0, 0] = 1.0  # all correct
    adv = torch.tensor([[[0, 0]], [[0, 0]]])  # fooled: (0,1) and (1,0)
    m = AttackSuccessRate()
    m.update(clean_logits[:1], adv[:1], target[:1])
    m.update(clean_logits[1:], adv[1:], target[1:])
    assert (int(m.clean_correct), int(m.fooled)) == (3, 2)
    assert m.compute() == pytest.approx(2 / 3)


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_no_clean_correct_pixel_is_nan():
    m = AttackSuccessRate()
    assert math.isnan(m.compute())
    m.update(torch.tensor([[[1]]]), torch.tensor([[[1]]]), torch.tensor([[[0]]]))
    assert math.isnan(m.compute())


def test_no_change_is_zero_and_all_fooled_is_one():
    target = torch.tensor([[[0, 1, 2]]])
    m = AttackSuccessRate()
    m.update(target, target, target)
    assert m.compute() == 0.0
    m2 = AttackSuccessRate()
    m2.update(target, (target + 1) % 3, target)
    assert m2.compute() == 1.0


def test_custom_ignore_index():
    target = torch.tensor([[[0, 7]]])
    m = AttackSuccessRate(ignore_index=7)
    m.update(target, torch.tensor([[[1, 0]]]), target)
    assert (int(m.clean_correct), int(m.fooled)) == (1, 1)


def test_shape_mismatch_rejected():
    with pytest.raises(ValueError, match="adv_pred"):
        AttackSuccessRate().update(torch.zeros(1, 2, 2), torch.zeros(1, 2, 3), torch.zeros(1, 2, 2))
