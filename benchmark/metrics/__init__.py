"""Metrics: dataset-level confusion-matrix scores (mmseg IoUMetric) and the attack success rate.

Imports only torch and torchmetrics.
"""

from benchmark.metrics.scores import Scores, SegmentationScores, scores_from_confusion
from benchmark.metrics.success import AttackSuccessRate

__all__ = ["AttackSuccessRate", "Scores", "SegmentationScores", "scores_from_confusion"]
