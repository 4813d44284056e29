"""A model's evaluation as the API shows it, computed from the per-item scores recorded at training."""

from __future__ import annotations

import math
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.schemas.evaluation import EvaluationItem, ItemRef, ModelEvaluation, RocPoint, ScoreHistogram, Verdicts
from infra import score_stats
from infra.database.models import Media
from infra.evaluation import EvaluationRecord, ScoredItem

_ID_CHUNK = 500  # bounded IN lists (databases limit bound parameters)


def existing_media(session: Session, media_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these media items still exist."""
    found: set[uuid.UUID] = set()
    for start in range(0, len(media_ids), _ID_CHUNK):
        chunk = media_ids[start:start + _ID_CHUNK]
        found.update(session.scalars(select(Media.id).where(Media.id.in_(chunk))))
    return found


def build_evaluation(model_id: uuid.UUID, record: EvaluationRecord, live_media: set[uuid.UUID],
                     threshold: float | None = None) -> ModelEvaluation:
    """ROC, histogram, thresholds and the wrong verdicts (at ``threshold``, default the model's own)."""
    labels, scores, items = record.labels, record.scores, record.items

    def media(item: ScoredItem) -> uuid.UUID | None:
        return item.media_id if item.media_id in live_media else None

    def refs(indices: list[int]) -> list[ItemRef]:
        return [ItemRef(snapshot_item_id=items[i].snapshot_item_id, media_id=media(items[i]), score=items[i].score)
                for i in indices]

    verdicts = score_stats.decisions_at(labels, scores, record.threshold if threshold is None else threshold)
    bins = score_stats.histogram(labels, scores)
    anomalous = sum(labels)
    return ModelEvaluation(
        model_id=model_id, snapshot_id=record.snapshot_id, score_source=record.score_source,
        normal_count=len(labels) - anomalous, anomalous_count=anomalous,
        image_auroc=score_stats.auroc(labels, scores),
        threshold=record.threshold,
        f1_optimal_threshold=score_stats.f1_optimal_threshold(labels, scores),
        at_threshold=Verdicts(threshold=verdicts.threshold, true_positives=verdicts.true_positives,
                              true_negatives=verdicts.true_negatives,
                              false_positives=refs(verdicts.false_positives),
                              false_negatives=refs(verdicts.false_negatives),
                              precision=verdicts.precision, recall=verdicts.recall, f1=verdicts.f1),
        roc=[RocPoint(threshold=point.threshold if math.isfinite(point.threshold) else None, fpr=point.fpr,
                      tpr=point.tpr) for point in score_stats.roc_points(labels, scores)],
        histogram=ScoreHistogram(edges=bins.edges, normal=bins.normal, anomalous=bins.anomalous),
        items=[EvaluationItem(snapshot_item_id=item.snapshot_item_id, media_id=media(item), filename=item.filename,
                              label=item.label, score=item.score) for item in items])
