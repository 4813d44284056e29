"""Geometry of the small server-drawn SVG charts (ROC curve, score histogram): numbers in, coordinates out.

The templates draw the shapes; this module only scales data into a fixed view box, so a page with a
20,000-item evaluation sends a few hundred bytes of path, not the data. Curves are thinned to at most
``MAX_POINTS`` vertices (every corner of a ROC staircase is not visible at 240 px).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from api.schemas.evaluation import RocPoint, ScoreHistogram

WIDTH, HEIGHT, PAD = 240, 180, 28
MAX_POINTS = 200


def _x(fraction: float) -> float:
    return round(PAD + fraction * (WIDTH - PAD - 8), 1)


def _y(fraction: float) -> float:
    return round(HEIGHT - PAD - fraction * (HEIGHT - PAD - 8), 1)


@dataclass(frozen=True)
class RocChart:
    points: str  # SVG polyline points
    width: int = WIDTH
    height: int = HEIGHT


def roc_chart(roc: Sequence[RocPoint]) -> RocChart:
    step = max(1, len(roc) // MAX_POINTS)
    kept = list(roc[::step])
    if roc and kept[-1] is not roc[-1]:
        kept.append(roc[-1])
    return RocChart(" ".join(f"{_x(point.fpr)},{_y(point.tpr)}" for point in kept))


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    count: int
    low: float
    high: float


@dataclass(frozen=True)
class HistogramChart:
    normal: list[Bar]
    anomalous: list[Bar]
    threshold_x: float
    threshold: float
    peak: int
    width: int = WIDTH
    height: int = HEIGHT


def histogram_chart(histogram: ScoreHistogram, threshold: float) -> HistogramChart:
    """Normal and anomalous counts per score bin as bars side by side, and the threshold's x."""
    edges = histogram.edges
    low, high = (edges[0], edges[-1]) if len(edges) > 1 else (0.0, 1.0)
    span = (high - low) or 1.0
    peak = max([*histogram.normal, *histogram.anomalous, 1])

    def bars(counts: Sequence[int], offset: float) -> list[Bar]:
        out = []
        for index, count in enumerate(counts):
            left, right = _x((edges[index] - low) / span), _x((edges[index + 1] - low) / span)
            half = (right - left) / 2
            top = _y(count / peak)
            out.append(Bar(round(left + offset * half, 1), top, round(max(half - 0.5, 0.5), 1),
                           round(_y(0) - top, 1), count, edges[index], edges[index + 1]))
        return out

    at = min(max((threshold - low) / span, 0.0), 1.0)
    return HistogramChart(bars(histogram.normal, 0), bars(histogram.anomalous, 1), _x(at), threshold, peak)
