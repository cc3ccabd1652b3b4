"""Metrics: dataset-level confusion-matrix scores (mmseg IoUMetric) and the attack success rate.

Imports only torch and torchmetrics.
"""

from benchmark.metrics.scores import (Scores, SegmentationScores, per_image_counts, scores_from_confusion,
                                      scores_from_counts)
from benchmark.metrics.success import AttackSuccessRate

__all__ = ["AttackSuccessRate", "Scores", "SegmentationScores", "per_image_counts", "scores_from_confusion", "scores_from_counts"]
