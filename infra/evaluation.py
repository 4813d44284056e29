"""A model's evaluation record: the score its exported IR gives each evaluation item of its snapshot.

The training flow writes it with the model's files (``models/{id}/evaluation.json``); the API
computes ROC, histogram, thresholds and the wrong verdicts from it (``GET /models/{id}/evaluation``);
retraining and automatic selection score models on the same items the same way.

Scores are the OpenVINO IR's, computed as a line computes them (``infra/openvino_model.py``: the
same decoding, resize and CPU precision), not the PyTorch model's that anomalib's own test metrics
use: what the record shows is what the line will see. They are anomalib's normalised scores: the
exported post-processor maps the adaptive (best-F1) threshold it learnt on the evaluation set to
``1 - image_sensitivity`` (0.5 by default) and clamps to 0..1, so the model's own threshold is the
``threshold`` kept in the record (and in the model's metrics).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from infra.database.engine import session_scope
from infra.database.models import SnapshotItem
from infra.model_files import evaluation_key
from infra.storage import ObjectStore

EVAL_LABELS = ("normal", "anomalous")
RECORD_VERSION = 1
SCORE_SOURCE = "openvino"
# anomalib's default image_sensitivity (0.5) puts its learnt threshold at 0.5 of the normalised score;
# every model exported before the threshold was recorded per model has it.
DEFAULT_MODEL_THRESHOLD = 0.5
THRESHOLD_METRIC = "threshold"


@dataclass(frozen=True)
class EvalItem:
    """One evaluation item of a snapshot (the media row may have been deleted since)."""

    snapshot_item_id: int
    media_id: uuid.UUID
    filename: str
    label: str  # normal | anomalous
    sha256: str
    mask_sha256: str | None = None  # the defect mask of an anomalous item, when it has one

    @property
    def anomalous(self) -> bool:
        return self.label == "anomalous"


def eval_items(session: Session, snapshot_id: uuid.UUID) -> list[EvalItem]:
    """The snapshot's evaluation items: its `eval` split plus every anomalous image (never trained on),
    in a stable order. Unlabelled items are left out. These are the images training tests on."""
    rows = session.execute(select(SnapshotItem.id, SnapshotItem.media_id, SnapshotItem.filename, SnapshotItem.label,
                                  SnapshotItem.sha256, SnapshotItem.mask_sha256)
                           .where(SnapshotItem.snapshot_id == snapshot_id, SnapshotItem.label.in_(EVAL_LABELS),
                                  (SnapshotItem.split == "eval") | (SnapshotItem.label == "anomalous"))
                           .order_by(SnapshotItem.id)).all()
    return [EvalItem(*row) for row in rows]


def load_eval_items(database_url: str, snapshot_id: uuid.UUID) -> list[EvalItem]:
    """:func:`eval_items` in a session of its own (for flows)."""
    with session_scope(database_url) as session:
        return eval_items(session, snapshot_id)


@dataclass(frozen=True)
class ScoredItem:
    snapshot_item_id: int
    media_id: uuid.UUID
    filename: str
    label: str
    score: float

    @property
    def anomalous(self) -> bool:
        return self.label == "anomalous"


@dataclass(frozen=True)
class EvaluationRecord:
    """What a model scored on each evaluation item, and the threshold it ships with."""

    snapshot_id: uuid.UUID
    threshold: float
    items: list[ScoredItem]
    score_source: str = SCORE_SOURCE

    @property
    def labels(self) -> list[bool]:
        return [item.anomalous for item in self.items]

    @property
    def scores(self) -> list[float]:
        return [item.score for item in self.items]

    def to_json(self) -> bytes:
        items = [{**asdict(item), "media_id": str(item.media_id)} for item in self.items]
        return json.dumps({"version": RECORD_VERSION, "snapshot_id": str(self.snapshot_id),
                           "threshold": self.threshold, "score_source": self.score_source,
                           "items": items}, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> EvaluationRecord:
        raw = json.loads(data)
        if raw.get("version") != RECORD_VERSION:
            raise ValueError(f"evaluation record version {raw.get('version')!r} is not {RECORD_VERSION}")
        items = [ScoredItem(int(item["snapshot_item_id"]), uuid.UUID(item["media_id"]), item["filename"],
                            item["label"], float(item["score"])) for item in raw["items"]]
        return cls(uuid.UUID(raw["snapshot_id"]), float(raw["threshold"]), items, raw.get("score_source", SCORE_SOURCE))


def score_items(model_dir: Path, items: list[EvalItem], fetch: Callable[[str], bytes]) -> list[ScoredItem]:
    """Each item scored by the IR under ``model_dir`` (``fetch`` returns a blob's bytes by hash)."""
    from infra.openvino_model import score_images

    scores = score_images(model_dir, [fetch(item.sha256) for item in items]) if items else []
    return [ScoredItem(item.snapshot_item_id, item.media_id, item.filename, item.label, score)
            for item, score in zip(items, scores, strict=True)]


def save_record(store: ObjectStore, model_id: uuid.UUID | str, record: EvaluationRecord) -> None:
    store.put(evaluation_key(model_id), record.to_json())


def load_record(store: ObjectStore, model_id: uuid.UUID | str) -> EvaluationRecord | None:
    """The model's record; None for a model trained before records were kept."""
    try:
        return EvaluationRecord.from_json(store.get(evaluation_key(model_id)))
    except FileNotFoundError:
        return None


def model_threshold(metrics: Mapping[str, Any] | None) -> float:
    """The threshold a model ships with (its metrics keep it; older models have anomalib's default)."""
    value = (metrics or {}).get(THRESHOLD_METRIC)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else DEFAULT_MODEL_THRESHOLD
