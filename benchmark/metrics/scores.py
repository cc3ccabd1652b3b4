"""Dataset-level segmentation scores: mIoU, per-class IoU and pixel accuracy (mmseg ``IoUMetric``).

Definition (pitfalls §9):

- one K x K confusion matrix ``C`` (rows: ground truth, columns: prediction) is accumulated over the
  whole split and over all ranks; pixels whose label is ``ignore_index`` are left out;
- ``IoU_k = C_kk / (row_k + col_k - C_kk)``; a class with zero union (absent from both prediction and
  ground truth) is *undefined*: ``None`` in :attr:`Scores.per_class_iou` and left out of the mean;
- a class that is predicted but absent from the ground truth has IoU 0 and counts in the mean;
- pixel accuracy (mmseg's aAcc) is ``trace(C) / sum(C)``; a class's accuracy is ``C_kk / row_k`` (undefined
  when the class is not labelled), and mAcc is their mean over the labelled classes.

The state is torchmetrics' :class:`~torchmetrics.classification.MulticlassConfusionMatrix` (integer
counts, ``dist_reduce_fx="sum"``), plus an integer image counter, so the pipeline can check that every
image was counted exactly once (pitfalls §10). States are synchronised once, in ``compute``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor
from torchmetrics.classification import MulticlassConfusionMatrix


class Scores(NamedTuple):
    """Scores of one (target, condition) over a whole split; plain Python numbers, fractions in [0, 1].

    Immutable. A ``NamedTuple`` rather than a frozen dataclass because torchmetrics post-processes
    ``compute()`` output with ``apply_to_collection``, which refuses frozen dataclasses.

    Args:
        miou: mean IoU over the classes whose IoU is defined (NaN when no class is defined, i.e. no
            valid pixel was seen).
        per_class_iou: IoU of each class in class-index order; ``None`` where the union is zero.
        pixel_accuracy: correctly classified valid pixels / valid pixels (mmseg's aAcc; NaN without valid pixels).
        per_class_acc: each class's correctly classified pixels over its labelled pixels; ``None`` where
            the class is not labelled.
        macc: mean of the defined per-class accuracies (mmseg's mAcc; NaN when none is defined).
        num_images: images counted by ``update`` (summed over ranks).
        num_pixels: valid (non-ignored) pixels counted.
    """

    miou: float
    per_class_iou: tuple[float | None, ...]
    pixel_accuracy: float
    num_images: int
    num_pixels: int
    per_class_acc: tuple[float | None, ...] = ()
    macc: float = math.nan


def scores_from_confusion(confmat: Tensor, num_images: int) -> Scores:
    """Reduce an integer K x K confusion matrix (rows: ground truth) to :class:`Scores`.

    Exact: the counts are read as Python integers and every ratio is one float division.
    """
    if confmat.ndim != 2 or confmat.shape[0] != confmat.shape[1]:
        raise ValueError(f"confusion matrix must be K x K, got shape {tuple(confmat.shape)}")
    counts: list[list[int]] = confmat.detach().to("cpu", torch.int64).tolist()
    num_classes = len(counts)
    labelled = [sum(r) for r in counts]
    predicted = [sum(counts[i][k] for i in range(num_classes)) for k in range(num_classes)]
    intersection = [counts[k][k] for k in range(num_classes)]
    return scores_from_counts(intersection, predicted, labelled, num_images)


def scores_from_counts(intersection: Sequence[int], predicted: Sequence[int], labelled: Sequence[int],
                       num_images: int) -> Scores:
    """:class:`Scores` from per-class pixel counts over valid pixels: correctly predicted
    (``intersection``), predicted as the class, and labelled as the class. These counts add up over
    images, so per-image records reproduce the dataset-level scores exactly."""
    per_class: list[float | None] = []
    for inter, pred, gt in zip(intersection, predicted, labelled):
        union = pred + gt - inter
        per_class.append(inter / union if union > 0 else None)
    defined = [v for v in per_class if v is not None]
    miou = math.fsum(defined) / len(defined) if defined else math.nan
    total, correct = sum(labelled), sum(intersection)
    per_class_acc = tuple(inter / gt if gt > 0 else None for inter, gt in zip(intersection, labelled))
    accs = [v for v in per_class_acc if v is not None]
    return Scores(
        miou=miou,
        per_class_iou=tuple(per_class),
        pixel_accuracy=correct / total if total > 0 else math.nan,
        num_images=int(num_images),
        num_pixels=int(total),
        per_class_acc=per_class_acc,
        macc=math.fsum(accs) / len(accs) if accs else math.nan,
    )


def per_image_counts(preds: Tensor, target: Tensor, num_classes: int,
                     ignore_index: int = 255) -> tuple[Tensor, Tensor, Tensor]:
    """Per-image, per-class counts over valid pixels: (intersection, predicted, labelled), each (N, K).

    ``preds`` and ``target`` are (N, H, W) class indices; pixels labelled ``ignore_index`` are left out.
    """
    n = target.shape[0]
    valid = target != ignore_index
    offset = torch.arange(n, device=target.device).view(n, 1, 1) * num_classes
    size = n * num_classes

    def count(index: Tensor, mask: Tensor) -> Tensor:
        return masked_counts(index + offset, mask, size).view(n, num_classes)

    safe_target = torch.where(valid, target, 0)
    return (count(safe_target, valid & (preds == target)), count(preds, valid), count(safe_target, valid))


def masked_counts(index: Tensor, keep: Tensor, size: int) -> Tensor:
    """How often each value of [0, size) occurs in ``index`` where ``keep`` is true: int64 (size,).

    ``torch.bincount`` of ``index[keep]`` without a host synchronisation on CUDA (no boolean indexing,
    whose size the host must read, and no bincount, which reads the maximum): dropped entries go to
    one extra slot. A one-dimensional integer ``scatter_add_``, exact and deterministic."""
    slots = torch.where(keep, index, size).flatten()
    counts = torch.zeros(size + 1, dtype=torch.long, device=index.device)
    return counts.scatter_add_(0, slots, torch.ones_like(slots))[:size]


class SegmentationScores(MulticlassConfusionMatrix):
    """Confusion-matrix metric whose ``compute`` returns :class:`Scores` (mmseg ``IoUMetric``).

    Args:
        num_classes: K.
        ignore_index: label left out of every count (default 255).
        validate_args: let torchmetrics check label ranges on every update (default True; it costs
            host synchronisations on GPU). False: the counts are added without any host
            synchronisation (:func:`masked_counts`); labels must then be class indices or
            ``ignore_index`` (the benchmark's datasets check every label file when they read it).

    Shapes:
        ``update(preds, target)``: ``preds`` int64 labels (N, H, W) or logits (N, K, H, W) (argmax is
        taken over dim 1); ``target`` int64 (N, H, W). N images are added to the image counter.

    Example:
        >>> metric = SegmentationScores(num_classes=21)
        >>> metric.update(logits, labels)
        >>> metric.compute().miou
    """

    full_state_update = False

    def __init__(self, num_classes: int, ignore_index: int = 255, validate_args: bool = True) -> None:
        super().__init__(num_classes=num_classes, ignore_index=ignore_index, normalize=None,
                         validate_args=validate_args)
        self.add_state("num_images", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:  # type: ignore[override]
        """Add one batch: ``preds`` (N, H, W) labels or (N, K, H, W) logits; ``target`` (N, H, W)."""
        if target.ndim != 3:
            raise ValueError(f"target must be (N, H, W), got shape {tuple(target.shape)}")
        if (preds.ndim not in (3, 4) or preds.shape[0] != target.shape[0]
                or preds.shape[-2:] != target.shape[-2:]):
            raise ValueError(
                f"preds must be (N, H, W) or (N, K, H, W) matching target {tuple(target.shape)}, "
                f"got {tuple(preds.shape)}"
            )
        if preds.ndim == 4:
            preds = preds.argmax(dim=1)
        if self.validate_args:
            super().update(preds, target)
        else:
            k = self.num_classes
            self.confmat += masked_counts(target * k + preds, target != self.ignore_index, k * k).view(k, k)
        self.num_images += target.shape[0]

    def compute(self) -> Scores:  # type: ignore[override]
        """Scores over everything accumulated (synchronised across ranks by torchmetrics)."""
        return scores_from_confusion(self.confmat, int(self.num_images))
