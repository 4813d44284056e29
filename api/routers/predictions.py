"""A media item's prediction by a model (the project's champion unless named): score, verdict, heat map."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response

from api.deps import SessionDep, get_or_404
from api.routing import API_PREFIX
from api.schemas.common import ErrorResponse
from api.schemas.predictions import PredictionOut
from api.services.predictions import THRESHOLD, PredictorDep, model_for
from infra.database.models import Media

router = APIRouter(prefix=API_PREFIX, tags=["media"])

ModelQuery = Annotated[uuid.UUID | None, Query(description="the model to ask; default: the project's champion")]
_ERRORS = {404: {"model": ErrorResponse, "description": "No media (or model) has this id"},
           409: {"model": ErrorResponse, "description": "No champion, or the model is not ready or cannot be loaded"},
           422: {"model": ErrorResponse, "description": "The model belongs to another project"}}


@router.get("/media/{media_id}/prediction", response_model=PredictionOut, responses=_ERRORS)
def get_prediction(media_id: uuid.UUID, session: SessionDep, predictor: PredictorDep,
                   model_id: ModelQuery = None) -> PredictionOut:
    """Score the image with the model's exported OpenVINO IR (computed once per model and image, then cached).

    `label` is `anomalous` when `score` is at or above `threshold` (0.5: the exported model's own
    threshold, which the live lines use by default)."""
    media = get_or_404(session, Media, media_id)
    model = model_for(session, media, model_id)
    result = predictor.predict(model, media)
    return PredictionOut(media_id=media.id, model_id=model.id, model_name=model.name, score=result.score,
                         label=result.label, threshold=THRESHOLD,
                         heatmap_url=f"/api/media/{media.id}/prediction/heatmap.png?model_id={model.id}"
                         if result.heatmap_png is not None else None)


@router.get("/media/{media_id}/prediction/heatmap.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}, "description": "The anomaly map, JET-coloured, at the "
                                                                          "image's aspect ratio"}, **_ERRORS})
def get_prediction_heatmap(media_id: uuid.UUID, session: SessionDep, predictor: PredictorDep,
                           model_id: ModelQuery = None) -> Response:
    """The model's anomaly map of the image as a PNG (opaque; lay it over the image with some transparency)."""
    media = get_or_404(session, Media, media_id)
    model = model_for(session, media, model_id)
    result = predictor.predict(model, media)
    if result.heatmap_png is None:
        raise HTTPException(status_code=409, detail=f"model {model.id} has no anomaly map output")
    # The same model and image always give the same map; a champion change is a different model_id.
    cache = "private, max-age=3600" if model_id is not None else "private, no-cache"
    return Response(result.heatmap_png, media_type="image/png",
                    headers={"Cache-Control": cache, "ETag": f'"{model.id}-{media.sha256}"',
                             "X-Content-Type-Options": "nosniff"})
