"""A model's evaluation as the API shows it, computed from the per-item scores recorded at training."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

from fastapi import HTTPException
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.schemas.evaluation import EvaluationItem, ItemRef, ModelEvaluation, RocPoint, ScoreHistogram, Verdicts
from infra import score_stats
from infra.database.models import Media, Model
from infra.evaluation import EvaluationRecord, ScoredItem, load_record
from infra.lru import Lru
from infra.storage import ObjectStore

_ID_CHUNK = 500  # bounded IN lists (databases limit bound parameters)


def existing_media(session: Session, media_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these media items still exist."""
    found: set[uuid.UUID] = set()
    for start in range(0, len(media_ids), _ID_CHUNK):
        chunk = media_ids[start:start + _ID_CHUNK]
        found.update(session.scalars(select(Media.id).where(Media.id.in_(chunk))))
    return found


def build_evaluation(model_id: uuid.UUID, record: EvaluationRecord, live_media: set[uuid.UUID],
                     threshold: float | None = None, shown: int | None = None) -> ModelEvaluation:
    """ROC, histogram, thresholds and the wrong verdicts (at ``threshold``, default the model's own).

    With ``shown``, a page's view: at most that many false positives and negatives (the most confident
    mistakes first) and no per-item list."""
    labels, scores, items = record.labels, record.scores, record.items

    def media(item: ScoredItem) -> uuid.UUID | None:
        return item.media_id if item.media_id in live_media else None

    def refs(indices: list[int]) -> list[ItemRef]:
        return [ItemRef(snapshot_item_id=items[i].snapshot_item_id, media_id=media(items[i]), score=items[i].score)
                for i in indices]

    verdicts = score_stats.decisions_at(labels, scores, record.threshold if threshold is None else threshold)
    false_positives, false_negatives = verdicts.false_positives, verdicts.false_negatives
    if shown is not None:
        false_positives = sorted(false_positives, key=lambda i: -scores[i])[:shown]
        false_negatives = sorted(false_negatives, key=lambda i: scores[i])[:shown]
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
                              false_positives=refs(false_positives), false_negatives=refs(false_negatives),
                              precision=verdicts.precision, recall=verdicts.recall, f1=verdicts.f1),
        roc=[RocPoint(threshold=point.threshold if math.isfinite(point.threshold) else None, fpr=point.fpr,
                      tpr=point.tpr) for point in score_stats.roc_points(labels, scores)],
        histogram=ScoreHistogram(edges=bins.edges, normal=bins.normal, anomalous=bins.anomalous),
        items=[EvaluationItem(snapshot_item_id=item.snapshot_item_id, media_id=media(item), filename=item.filename,
                              label=item.label, score=item.score) for item in items] if shown is None else [])


# Records are written once by the training and never change (a model id is never reused): a page view reads
# a 20,000-item record from storage once per process, and computes its curves and comparisons once.
_records: Lru[uuid.UUID, EvaluationRecord] = Lru(16)
_views: Lru[tuple[uuid.UUID, float | None, int], ModelEvaluation] = Lru(32)
_disagreements: Lru[tuple[uuid.UUID, ...], list[Disagreement]] = Lru(16)


def cached_record(store: ObjectStore, model_id: uuid.UUID) -> EvaluationRecord | None:
    record = _records.get(model_id)
    if record is None:
        record = load_record(store, model_id)
        if record is not None:
            _records.put(model_id, record)
    return record


def evaluation_record(store: ObjectStore, model: Model) -> EvaluationRecord:
    """The model's evaluation record: 409 unless ready, 404 when it was trained before records were kept."""
    if model.status != "ready":
        raise HTTPException(status_code=409, detail=f"Model {model.id} is {model.status}, not ready")
    record = cached_record(store, model.id)
    if record is None:
        raise HTTPException(status_code=404, detail=(
            f"Model {model.id} has no evaluation record: it was trained before the platform kept each evaluation "
            "item's score. Train it again (same snapshot) to get one."))
    return record


def model_evaluation(session: Session, store: ObjectStore, model: Model, threshold: float | None = None,
                     shown: int | None = None) -> ModelEvaluation:
    """``GET /models/{id}/evaluation``, or with ``shown`` the bounded view a console page draws."""
    record = evaluation_record(store, model)
    if shown is None:
        return build_evaluation(model.id, record, existing_media(session, sorted({i.media_id for i in record.items})),
                                threshold)
    # A page's view (curves computed once per model and threshold); only the items it shows are looked up,
    # and a deleted one keeps its score, not its picture.
    view = _views.get_or_make((model.id, threshold, shown), lambda: build_evaluation(
        model.id, record, {item.media_id for item in record.items}, threshold, shown))
    at = view.at_threshold
    live = existing_media(session, sorted({ref.media_id for ref in at.false_positives + at.false_negatives
                                           if ref.media_id is not None}))

    def kept(refs: list[ItemRef]) -> list[ItemRef]:
        return [ref if ref.media_id in live else ref.model_copy(update={"media_id": None}) for ref in refs]

    return view.model_copy(update={"at_threshold": at.model_copy(update={
        "false_positives": kept(at.false_positives), "false_negatives": kept(at.false_negatives)})})


@dataclass(frozen=True)
class Disagreement:
    """An evaluation image scored by every compared model: their scores and verdicts at their own thresholds."""

    media_id: uuid.UUID
    filename: str
    label: str
    scores: dict[uuid.UUID, float]
    verdicts: dict[uuid.UUID, bool]  # True: called anomalous

    @property
    def split_verdict(self) -> bool:
        return len(set(self.verdicts.values())) > 1

    @property
    def spread(self) -> float:
        return max(self.scores.values()) - min(self.scores.values())


def disagreements(records: dict[uuid.UUID, EvaluationRecord], limit: int) -> list[Disagreement]:
    """The images every model scored on which they disagree most: different verdicts first, then the
    widest score spread (matched by media item, so models of different snapshots compare on their overlap)."""
    if len(records) < 2:
        return []
    return _disagreements.get_or_make((*records, limit), lambda: _rank_disagreements(records, limit))


def _rank_disagreements(records: dict[uuid.UUID, EvaluationRecord], limit: int) -> list[Disagreement]:
    by_media = [{item.media_id: item for item in record.items} for record in records.values()]
    shared = set(by_media[0]).intersection(*by_media[1:])
    found = []
    for media_id in shared:
        items = {model_id: scored[media_id] for model_id, scored in zip(records, by_media, strict=True)}
        first = next(iter(items.values()))
        found.append(Disagreement(media_id, first.filename, first.label,
                                  {model_id: item.score for model_id, item in items.items()},
                                  {model_id: item.score >= records[model_id].threshold
                                   for model_id, item in items.items()}))
    # Ties (models that agree) go by the highest score: the images that look most defective first.
    found.sort(key=lambda item: (item.split_verdict, item.spread, max(item.scores.values()), str(item.media_id)),
               reverse=True)
    return found[:limit]
