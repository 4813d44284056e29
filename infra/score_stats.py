"""Statistics of anomaly scores against normal/anomalous labels: ROC, AUROC and its standard error,
F1-optimal threshold, histogram, the decision at a threshold.

numpy and scikit-learn's ROC; no torch (the API computes a model's evaluation with it).
The decision rule is the live runtime's: a score **at or above** the threshold is anomalous
(`pipelines/runtime.py`), and `anomalous` is the positive class throughout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

HISTOGRAM_BINS = 20


def _arrays(labels: Sequence[bool], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    positive = np.asarray(labels, dtype=bool)
    values = np.asarray(scores, dtype=np.float64)
    if positive.shape != values.shape or positive.ndim != 1:
        raise ValueError("labels and scores must be two lists of the same length")
    return positive, values


def both_classes(labels: Sequence[bool]) -> bool:
    positive = np.asarray(labels, dtype=bool)
    return bool(positive.any()) and bool((~positive).any())


@dataclass(frozen=True)
class RocPoint:
    threshold: float  # score >= threshold is called anomalous
    fpr: float
    tpr: float


def roc_points(labels: Sequence[bool], scores: Sequence[float]) -> list[RocPoint]:
    """The ROC curve with one point per distinct score (highest first), from (0, 0) to (1, 1).

    Empty unless both classes are present. The first point's threshold is +inf (nothing flagged).
    """
    from sklearn.metrics import roc_curve

    positive, values = _arrays(labels, scores)
    if not both_classes(positive):
        return []
    fpr, tpr, thresholds = roc_curve(positive, values, drop_intermediate=False)
    return [RocPoint(float(threshold), float(x), float(y))
            for x, y, threshold in zip(fpr, tpr, thresholds, strict=True)]


def auroc(labels: Sequence[bool], scores: Sequence[float]) -> float | None:
    """Area under the ROC curve (ties count one half); None unless both classes are present."""
    from sklearn.metrics import roc_auc_score

    positive, values = _arrays(labels, scores)
    if not both_classes(positive):
        return None
    return float(roc_auc_score(positive, values))


def _placements(anomalous: np.ndarray, normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's structural components: for each anomalous score the share of normals it outranks
    (ties one half), and for each normal score the share of anomalous scores above it."""
    greater = (anomalous[:, None] > normal[None, :]).astype(np.float64)
    equal = (anomalous[:, None] == normal[None, :]).astype(np.float64)
    wins = greater + 0.5 * equal
    return wins.mean(axis=1), wins.mean(axis=0)


def auroc_difference_se(labels: Sequence[bool], scores_a: Sequence[float], scores_b: Sequence[float]) -> float | None:
    """Standard error of AUROC(a) - AUROC(b) for two models scored on the SAME items (DeLong et al. 1988).

    The paired form accounts for the correlation between two models judged on one evaluation
    set, which is what makes a small set's noise estimate usable. None unless both classes are
    present; 0.0 when neither model has any variation left (e.g. both separate perfectly).
    """
    positive, first = _arrays(labels, scores_a)
    _, second = _arrays(labels, scores_b)
    if not both_classes(positive):
        return None
    m, n = int(positive.sum()), int((~positive).sum())
    v10 = np.empty((2, m))
    v01 = np.empty((2, n))
    for row, values in enumerate((first, second)):
        v10[row], v01[row] = _placements(values[positive], values[~positive])
    s10 = np.cov(v10) if m > 1 else np.zeros((2, 2))
    s01 = np.cov(v01) if n > 1 else np.zeros((2, 2))
    covariance = s10 / m + s01 / n
    variance = covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]
    return float(math.sqrt(max(variance, 0.0)))


@dataclass(frozen=True)
class Decisions:
    """The verdicts at one threshold: indices into the scored items."""

    threshold: float
    false_positives: list[int]
    false_negatives: list[int]
    true_positives: int
    true_negatives: int

    @property
    def precision(self) -> float | None:
        flagged = self.true_positives + len(self.false_positives)
        return self.true_positives / flagged if flagged else None

    @property
    def recall(self) -> float | None:
        anomalous = self.true_positives + len(self.false_negatives)
        return self.true_positives / anomalous if anomalous else None

    @property
    def f1(self) -> float | None:
        anomalous = self.true_positives + len(self.false_negatives)
        if not anomalous:
            return None
        wrong = len(self.false_positives) + len(self.false_negatives)
        return 2 * self.true_positives / (2 * self.true_positives + wrong)


def decisions_at(labels: Sequence[bool], scores: Sequence[float], threshold: float) -> Decisions:
    positive, values = _arrays(labels, scores)
    flagged = values >= threshold
    return Decisions(threshold=float(threshold),
                     false_positives=np.flatnonzero(flagged & ~positive).tolist(),
                     false_negatives=np.flatnonzero(~flagged & positive).tolist(),
                     true_positives=int((flagged & positive).sum()),
                     true_negatives=int((~flagged & ~positive).sum()))


def f1_optimal_threshold(labels: Sequence[bool], scores: Sequence[float]) -> float | None:
    """The threshold with the best F1 on these items; None unless both classes are present.

    Among cuts with equal F1 the highest wins (fewest false alarms). The value lies midway between
    the lowest flagged score and the next lower one, so a re-run that moves a score by rounding
    noise does not flip a verdict; with nothing below, it is the lowest score itself.
    """
    positive, values = _arrays(labels, scores)
    if not both_classes(positive):
        return None
    points = roc_points(positive, values)[1:]
    anomalous, normal = int(positive.sum()), int((~positive).sum())
    best_index, best_f1 = 0, -1.0
    for index, point in enumerate(points):
        tp, fp = point.tpr * anomalous, point.fpr * normal
        f1 = 2 * tp / (2 * tp + fp + (anomalous - tp))
        if f1 > best_f1 + 1e-12:
            best_index, best_f1 = index, f1
    cut = points[best_index].threshold
    below = values[values < cut]
    return float((cut + below.max()) / 2) if below.size else float(cut)


@dataclass(frozen=True)
class Histogram:
    edges: list[float]  # len(normal) + 1 bin edges
    normal: list[int]
    anomalous: list[int]


def histogram(labels: Sequence[bool], scores: Sequence[float], bins: int = HISTOGRAM_BINS) -> Histogram:
    """Counts of normal and anomalous scores in shared bins over [0, 1] (widened to cover every score)."""
    positive, values = _arrays(labels, scores)
    low = min(0.0, float(values.min())) if values.size else 0.0
    high = max(1.0, float(values.max())) if values.size else 1.0
    edges = np.linspace(low, high, bins + 1)
    return Histogram(edges=[round(float(edge), 6) for edge in edges],
                     normal=np.histogram(values[~positive], bins=edges)[0].tolist(),
                     anomalous=np.histogram(values[positive], bins=edges)[0].tolist())
