"""Schema of a model's evaluation (``GET /models/{id}/evaluation``): what it scored on each evaluation item."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, Field


class EvaluationItem(BaseModel):
    snapshot_item_id: int
    # The media item scored; null when it has been deleted since (the snapshot item still names it).
    media_id: uuid.UUID | None
    filename: str
    label: Literal["normal", "anomalous"]
    score: float


class ItemRef(BaseModel):
    snapshot_item_id: int
    media_id: uuid.UUID | None
    score: float


class RocPoint(BaseModel):
    # A score at or above this is called anomalous; null for the first point (nothing flagged).
    threshold: float | None
    fpr: float
    tpr: float


class ScoreHistogram(BaseModel):
    edges: list[float] = Field(description="bin edges; bin i holds scores in [edges[i], edges[i+1])")
    normal: list[int]
    anomalous: list[int]


class Verdicts(BaseModel):
    """The verdicts at one threshold (score >= threshold = anomalous, as on the line)."""

    threshold: float
    true_positives: int
    true_negatives: int
    false_positives: list[ItemRef]
    false_negatives: list[ItemRef]
    precision: float | None
    recall: float | None
    f1: float | None


class ModelEvaluation(BaseModel):
    model_id: uuid.UUID
    snapshot_id: uuid.UUID
    # Whose scores: the exported OpenVINO IR's, computed as a line computes them.
    score_source: str
    normal_count: int
    anomalous_count: int
    # Image AUROC of these scores; null unless both classes are present.
    image_auroc: float | None
    # The threshold the model ships with (normalised score); what a pipeline with "threshold": "model" uses.
    threshold: float
    # The threshold with the best F1 on these items; null unless both classes are present.
    f1_optimal_threshold: float | None
    # Verdicts at the model's threshold, or at the `threshold` query parameter when given.
    at_threshold: Verdicts
    roc: list[RocPoint]
    histogram: ScoreHistogram
    items: list[EvaluationItem]
