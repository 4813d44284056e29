"""A media item's prediction by a model: score, verdict and heat map, from the model's exported IR.

Computed in the API process with the same OpenVINO code the live lines and the retraining flow use
(`infra/openvino_model.py`), and bounded in memory: at most `MODELS_KEPT` compiled models (a PaDiM
holds ~170 MiB of weights) and `RESULTS_KEPT` results, least recently used first out. A result is
keyed by (model id, media sha256): a ready model's files and a blob's bytes never change, so a
cached result never goes stale. OpenVINO and OpenCV are imported on the first prediction only, so
an API that never predicts never loads them (and the API process never imports torch).
"""

from __future__ import annotations

import io
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import get_or_404
from infra.database.models import Media, Model
from infra.lru import Lru
from infra.model_cache import ModelCache, ModelFilesMissing
from infra.storage import ObjectStore, blob_key

if TYPE_CHECKING:
    import numpy as np

    from infra.openvino_model import AnomalyModel

# The exported IR normalises its score so that 0.5 is the model's own threshold; the live lines use the
# same default and call a score at or above it anomalous (pipelines/runtime.py).
THRESHOLD = 0.5
MODELS_KEPT = 2
RESULTS_KEPT = 128
HEATMAP_LONGEST_SIDE = 512
_lock = threading.Lock()


@dataclass(frozen=True)
class Prediction:
    model_id: uuid.UUID
    media_id: uuid.UUID
    score: float
    label: str
    heatmap_png: bytes | None  # None when the IR has no anomaly map output


def label_for(score: float) -> str:
    return "anomalous" if score >= THRESHOLD else "normal"


def model_for(session: Session, media: Media, model_id: uuid.UUID | None) -> Model:
    """The model that predicts: the one asked for (404 unknown, 422 another project's), else the project's
    champion (409 when there is none); 409 unless it is ready."""
    if model_id is None:
        model = session.scalar(select(Model).where(Model.project_id == media.project_id, Model.champion))
        if model is None:
            raise HTTPException(status_code=409, detail="the project has no champion model yet: promote a ready "
                                                        "model, or name one with model_id")
    else:
        model = get_or_404(session, Model, model_id)
        if model.project_id != media.project_id:
            raise HTTPException(status_code=422, detail=f"model {model_id} belongs to another project")
    if model.status != "ready":
        raise HTTPException(status_code=409, detail=f"model {model.id} is {model.status}, not ready")
    return model


class Predictor:
    """Compiled models and results of one API process, both in small LRU caches (thread-safe)."""

    def __init__(self, store: ObjectStore, cache_dir: Path) -> None:
        self._lock = threading.Lock()
        self._store = store
        self._files = ModelCache(store, cache_dir, keep=MODELS_KEPT + 2)
        self._models: Lru[uuid.UUID, AnomalyModel] = Lru(MODELS_KEPT)
        self._results: Lru[tuple[uuid.UUID, str], Prediction] = Lru(RESULTS_KEPT)

    def predict(self, model: Model, media: Media) -> Prediction:
        key = (model.id, media.sha256)
        with self._lock:
            cached = self._results.get(key)
            if cached is not None:
                return Prediction(model.id, media.id, cached.score, cached.label, cached.heatmap_png)
            # One inference at a time: a compiled model's request is not thread-safe, and the API's two cores
            # are better spent on one image than on several at half speed.
            compiled = self._compiled(model.id)
            frame = _decode(self._read(media))
            outcome = compiled.infer(frame)
            height, width = frame.shape[:2]
            scale = min(1.0, HEATMAP_LONGEST_SIDE / max(height, width))
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            result = Prediction(model.id, media.id, outcome.score, label_for(outcome.score),
                                _heatmap_png(outcome.anomaly_map, size) if outcome.anomaly_map is not None else None)
            return self._results.put(key, result)

    def _compiled(self, model_id: uuid.UUID) -> AnomalyModel:
        from infra.openvino_model import AnomalyModel, ModelLoadError

        compiled = self._models.get(model_id)
        if compiled is not None:
            return compiled
        try:
            compiled = AnomalyModel(self._files.get(model_id))
        except (ModelFilesMissing, ModelLoadError) as error:
            raise HTTPException(status_code=409, detail=f"model {model_id} cannot be loaded: {error}") from error
        return self._models.put(model_id, compiled)

    def _read(self, media: Media) -> bytes:
        try:
            return self._store.get(blob_key(media.sha256))
        except FileNotFoundError as error:
            raise HTTPException(status_code=404, detail="media content is missing from storage") from error


def _decode(data: bytes) -> np.ndarray:
    """BGR pixels as the line decodes frames (OpenCV), with Pillow for what OpenCV cannot read."""
    import cv2
    import numpy as np
    from PIL import Image

    frame = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if frame is None:
        with Image.open(io.BytesIO(data)) as image:
            frame = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
    return frame


def _heatmap_png(anomaly_map: np.ndarray, size: tuple[int, int]) -> bytes:
    from infra.heatmap import heatmap_png

    return heatmap_png(anomaly_map, size)


def get_predictor(request: Request) -> Predictor:
    """One predictor per app, made on first use."""
    state = request.app.state
    with _lock:
        if getattr(state, "predictor", None) is None:
            state.predictor = Predictor(state.store, state.settings.resolved_data_dir / "cache" / "api-models")
    return state.predictor


PredictorDep = Annotated[Predictor, Depends(get_predictor)]
