"""The selection rule: best by the decision metric, unless a cheaper candidate is within one standard error."""

from __future__ import annotations

import numpy as np
import pytest

from infra.model_selection import Scored, choose
from infra.score_stats import auroc, auroc_difference_se


def _scores(labels: np.ndarray, separation: float, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 1, labels.size) + labels * separation).tolist()


def test_a_cheaper_candidate_within_noise_wins_and_says_so() -> None:
    labels = np.r_[np.ones(8, bool), np.zeros(12, bool)]  # a small evaluation set
    cheap, costly = _scores(labels, 1.6, 1), _scores(labels, 1.8, 1)  # two models that see the same noise
    a, b = auroc(labels, cheap), auroc(labels, costly)
    assert a < b and b - a <= auroc_difference_se(labels, costly, cheap)  # the setting of this test
    choice = choose([Scored("padim", a, cheap), Scored("patchcore", b, costly)], "image_auroc", labels.tolist())
    assert (choice.index, choice.best_index) == (0, 1)
    assert "within one standard error" in choice.reason and "padim" in choice.reason
    assert choice.standard_error == pytest.approx(auroc_difference_se(labels, costly, cheap))


def test_a_clearly_better_costlier_candidate_wins() -> None:
    labels = np.r_[np.ones(40, bool), np.zeros(60, bool)]
    weak, strong = _scores(labels, 0.3, 3), _scores(labels, 3.0, 4)
    choice = choose([Scored("padim", auroc(labels, weak), weak), Scored("patchcore", auroc(labels, strong), strong)],
                    "image_auroc", labels.tolist())
    assert choice.index == 1 and "more than one standard error" in choice.reason


def test_ties_go_to_the_cheaper_and_pixel_metrics_pick_the_best() -> None:
    assert choose([Scored("a", 1.0), Scored("b", 1.0)], "image_auroc").index == 0
    choice = choose([Scored("a", 0.90), Scored("b", 0.91), Scored("c", 0.89)], "pixel_auroc")
    assert choice.index == 1 and "no noise estimate" in choice.reason
    assert choose([Scored("a", 0.95), Scored("b", 0.91)], "aupro").reason.endswith("cheapest of 2")
