"""Model rows: list, read, delete, promote to champion. Training creates them; export comes with the training flows."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from api.deps import SessionDep, SettingsDep, StoreDep, get_or_404
from api.links import UiLinksDep, model_out
from api.routing import API_PREFIX
from api.schemas.common import ErrorResponse
from api.schemas.evaluation import ModelEvaluation
from api.schemas.jobs import JobAccepted
from api.schemas.models import ModelOut
from api.services import models
from api.services.evaluation import model_evaluation
from api.services.jobs import OrchestratorDep
from infra.database.models import Model, Project
from infra.model_files import COMPRESSIONS, EXPORT_FORMATS

router = APIRouter(prefix=API_PREFIX, tags=["models"])


@router.get("/projects/{project_id}/models", response_model=list[ModelOut])
def list_models(project_id: uuid.UUID, session: SessionDep, links: UiLinksDep) -> list[ModelOut]:
    get_or_404(session, Project, project_id)
    return [model_out(model, links) for model in models.project_models(session, project_id)]


@router.get("/models/{model_id}", response_model=ModelOut)
def get_model(model_id: uuid.UUID, session: SessionDep, links: UiLinksDep) -> ModelOut:
    return model_out(get_or_404(session, Model, model_id), links)


@router.get("/models/{model_id}/evaluation", response_model=ModelEvaluation,
            responses={409: {"model": ErrorResponse, "description": "The model is not ready"},
                       404: {"model": ErrorResponse,
                             "description": "Unknown model, or one trained before per-item scores were recorded"}})
def get_model_evaluation(model_id: uuid.UUID, session: SessionDep, store: StoreDep,
                         threshold: Annotated[float | None, Query(ge=0, le=1, description=(
                             "Verdicts (false positives/negatives) at this threshold instead of the model's"))] = None,
                         ) -> ModelEvaluation:
    """How the model scored each item of the evaluation set it was measured on: ROC, score histogram,
    its threshold and the best-F1 one, and the items it gets wrong at its threshold."""
    return model_evaluation(session, store, get_or_404(session, Model, model_id), threshold)


@router.post("/models/{model_id}/promote", response_model=ModelOut)
def promote_model(model_id: uuid.UUID, session: SessionDep, settings: SettingsDep, links: UiLinksDep) -> ModelOut:
    """Make the model its project's champion: pipelines that follow the champion switch to it live."""
    return model_out(models.promote_model(session, settings, get_or_404(session, Model, model_id)), links)


@router.delete("/models/{model_id}", status_code=204)
def delete_model(model_id: uuid.UUID, session: SessionDep, settings: SettingsDep, store: StoreDep,
                 orchestrator: OrchestratorDep) -> Response:
    models.delete_model(session, settings, store, orchestrator, get_or_404(session, Model, model_id))
    return Response(status_code=204)


@router.get("/models/{model_id}/export", response_class=Response,
            responses={200: {"content": {"application/zip": {}}, "description": "The model archive"},
                       202: {"model": JobAccepted, "description": "An export job makes the archive"}})
def export_model(model_id: uuid.UUID, session: SessionDep, store: StoreDep, orchestrator: OrchestratorDep,
                 export_format: Annotated[Literal[EXPORT_FORMATS], Query(alias="format")],  # type: ignore[valid-type]
                 compression: Literal[COMPRESSIONS] | None = None) -> Response:  # type: ignore[valid-type]
    """The zip archive when it exists; otherwise (or while it is being made) 202 with the export job."""
    model = get_or_404(session, Model, model_id)
    models.check_exportable(model, export_format, compression)
    archive = models.export_archive(store, model, export_format, compression)
    if archive is not None:
        return models.archive_response(archive)
    job_id = models.export_job(session, orchestrator, model, export_format, compression)
    return JSONResponse(status_code=202, content=JobAccepted(job_id=job_id).model_dump(mode="json"))

