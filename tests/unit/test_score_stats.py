"""Score statistics behind a model's evaluation and the automatic selection's noise rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score

from infra import score_stats


def test_roc_has_a_point_per_distinct_score_and_auroc_counts_ties_half() -> None:
    labels = [False, False, True, True, False, True]
    scores = [0.1, 0.4, 0.4, 0.8, 0.2, 0.9]
    points = score_stats.roc_points(labels, scores)
    assert [(p.fpr, p.tpr) for p in points] == [(0, 0), (0, 1 / 3), (0, 2 / 3), (1 / 3, 1), (2 / 3, 1), (1, 1)]
    assert math.isinf(points[0].threshold) and [p.threshold for p in points[1:]] == [0.9, 0.8, 0.4, 0.2, 0.1]
    # 9 pairs: 8 won outright, one tie (0.4 vs 0.4) counts one half.
    assert score_stats.auroc(labels, scores) == pytest.approx(8.5 / 9)


def test_one_class_has_no_roc_no_auroc_and_no_f1_threshold() -> None:
    assert score_stats.roc_points([False, False], [0.1, 0.2]) == []
    assert score_stats.auroc([True, True], [0.1, 0.2]) is None
    assert score_stats.f1_optimal_threshold([False], [0.3]) is None
    assert score_stats.auroc_difference_se([True], [0.1], [0.2]) is None


def test_f1_optimal_threshold_is_the_best_f1_cut_midway_between_scores() -> None:
    rng = np.random.default_rng(3)
    labels = rng.random(60) < 0.3
    scores = np.where(labels, rng.normal(0.65, 0.15, 60), rng.normal(0.4, 0.15, 60))
    threshold = score_stats.f1_optimal_threshold(labels.tolist(), scores.tolist())
    best = max(f1_score(labels, scores >= cut) for cut in scores)
    assert f1_score(labels, scores >= threshold) == pytest.approx(best)
    assert threshold not in set(scores.tolist())  # between two scores, not on one
    # A perfect separation: midway between the highest normal and the lowest anomalous score.
    assert score_stats.f1_optimal_threshold([False, False, True], [0.2, 0.3, 0.7]) == pytest.approx(0.5)


def test_decisions_use_the_lines_rule_score_at_or_above_is_anomalous() -> None:
    labels = [False, False, True, True]
    verdicts = score_stats.decisions_at(labels, [0.5, 0.2, 0.5, 0.1], 0.5)
    assert verdicts.false_positives == [0] and verdicts.false_negatives == [3]
    assert (verdicts.true_positives, verdicts.true_negatives) == (1, 1)
    assert (verdicts.precision, verdicts.recall, verdicts.f1) == (0.5, 0.5, 0.5)


def test_histogram_bins_both_classes_on_shared_edges() -> None:
    bins = score_stats.histogram([False, True, True], [0.01, 0.99, 1.0], bins=4)
    assert bins.edges == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert bins.normal == [1, 0, 0, 0] and bins.anomalous == [0, 0, 0, 2]


def test_delong_standard_error_matches_the_spread_of_auroc_differences() -> None:
    """The paired standard error predicts how much the AUROC difference of two correlated models varies
    between evaluation sets drawn from the same population (checked against 400 resampled sets)."""
    rng = np.random.default_rng(0)

    def draw(m: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        labels = np.r_[np.ones(m, bool), np.zeros(n, bool)]
        shared = rng.normal(labels * 1.0, 1.0)
        return labels, shared + rng.normal(0, 0.5, m + n), shared + labels * 0.3 + rng.normal(0, 0.5, m + n)

    differences, estimates = [], []
    for _ in range(400):
        labels, first, second = draw(20, 30)
        differences.append(score_stats.auroc(labels, first) - score_stats.auroc(labels, second))
        estimates.append(score_stats.auroc_difference_se(labels, first, second))
    assert np.mean(estimates) == pytest.approx(np.std(differences), rel=0.15)


def test_delong_standard_error_is_zero_when_both_separate_perfectly() -> None:
    labels = [False, False, True, True]
    assert score_stats.auroc_difference_se(labels, [0.1, 0.2, 0.8, 0.9], [0.3, 0.1, 0.6, 0.7]) == 0.0
