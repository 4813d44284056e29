"""Which of several candidate models to keep: the best by the decision metric, unless a cheaper one
is within noise of it on the evaluation set.

Evaluation sets are small (a few dozen images), so a better AUROC by a hair is often chance.
The rule is the one-standard-error rule (Breiman et al., CART, 1984): take the cheapest candidate
whose score is within one standard error of the best one's. For image AUROC the standard error is
that of the *difference* of the two AUROCs on the same items (DeLong et al., 1988, paired form:
two models judged on one set are correlated, which a per-model error bar ignores). Pixel metrics
have no per-image comparison here, so they pick the best outright (an exact tie goes to the cheaper).
Candidates come cheapest first. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from infra.score_stats import auroc_difference_se

DECISION_METRICS = ("image_auroc", "pixel_auroc", "aupro")
# Standard errors the rule accepts a cheaper candidate within.
NOISE_STANDARD_ERRORS = 1.0


@dataclass(frozen=True)
class Scored:
    """One trained candidate as the rule sees it (listed cheapest first)."""

    label: str  # e.g. "padim · mobilenetv2_100"
    value: float  # the decision metric
    # The IR's score of each evaluation item (same items, same order for every candidate), when known.
    scores: Sequence[float] | None = None


@dataclass(frozen=True)
class Choice:
    index: int  # into the candidates given
    best_index: int  # the highest value (the first of equals)
    standard_error: float | None  # of the difference chosen-vs-best (None: not estimated)
    reason: str


def choose(candidates: Sequence[Scored], metric: str, labels: Sequence[bool] | None = None) -> Choice:
    """The candidate to keep. ``labels`` (anomalous = True) go with each candidate's ``scores``."""
    if not candidates:
        raise ValueError("no candidate to choose from")
    best = max(range(len(candidates)), key=lambda i: (candidates[i].value, -i))
    top = candidates[best]
    for index, candidate in enumerate(candidates[:best]):
        se = _difference_se(top, candidate, labels) if metric == "image_auroc" else None
        gap = top.value - candidate.value
        if gap <= 1e-12:
            return Choice(index, best, se, f"{candidate.label} ties the best {metric} "
                                           f"({candidate.value:.4f}) and is cheaper")
        if se is not None and gap <= NOISE_STANDARD_ERRORS * se:
            return Choice(index, best, se, (
                f"{candidate.label} ({metric} {candidate.value:.4f}) is within one standard error "
                f"({se:.4f}, DeLong, paired) of the best, {top.label} ({top.value:.4f}), and is cheaper"))
    beaten = len(candidates) - 1
    if best == 0:
        reason = f"{top.label} has the best {metric} ({top.value:.4f}) and is the cheapest of {beaten + 1}"
    elif metric == "image_auroc" and labels is not None:
        reason = (f"{top.label} has the best {metric} ({top.value:.4f}); every cheaper candidate is more than "
                  "one standard error (DeLong, paired) below it")
    else:
        reason = (f"{top.label} has the best {metric} ({top.value:.4f}) of {beaten + 1} "
                  "(no noise estimate for this metric)")
    return Choice(best, best, None, reason)


def _difference_se(top: Scored, other: Scored, labels: Sequence[bool] | None) -> float | None:
    if labels is None or top.scores is None or other.scores is None:
        return None
    return auroc_difference_se(labels, top.scores, other.scores)
