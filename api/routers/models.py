"""Model rows: list, read, delete, promote to champion. Training creates them; export comes with the training flows."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import select

from api.deps import SessionDep, SettingsDep, StoreDep, get_or_404
from api.links import UiLinksDep, model_out
from api.schemas.common import ErrorResponse
from api.schemas.evaluation import ModelEvaluation
from api.schemas.jobs import JobAccepted
from api.schemas.models import ModelOut
from api.services.evaluation import build_evaluation, existing_media
from api.services.guards import ensure_unused
from api.services.jobs import OrchestratorDep, cancel_training_jobs, orchestration_errors, submit_job
from infra.champion import AliasNotMoved, NotPromotable, promote, withdraw_alias
from infra.database.models import Model, Pipeline, Project
from infra.evaluation import load_record
from infra.model_files import COMPRESSIONS, EXPORT_FORMATS, archive_key, export_name, model_prefix
from infra.orchestration import JobType
from infra.tracking import tracking_uri

router = APIRouter(tags=["models"])


@router.get("/projects/{project_id}/models", response_model=list[ModelOut])
def list_models(project_id: uuid.UUID, session: SessionDep, links: UiLinksDep) -> list[ModelOut]:
    get_or_404(session, Project, project_id)
    models = session.scalars(select(Model).where(Model.project_id == project_id).order_by(Model.created_at.desc()))
    return [model_out(model, links) for model in models]


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
    model = get_or_404(session, Model, model_id)
    if model.status != "ready":
        raise HTTPException(status_code=409, detail=f"Model {model_id} is {model.status}, not ready")
    record = load_record(store, model_id)
    if record is None:
        raise HTTPException(status_code=404, detail=(
            f"Model {model_id} has no evaluation record: it was trained before the platform kept each evaluation "
            "item's score. Train it again (same snapshot) to get one."))
    live = existing_media(session, sorted({item.media_id for item in record.items}))
    return build_evaluation(model_id, record, live, threshold)


@router.post("/models/{model_id}/promote", response_model=ModelOut)
def promote_model(model_id: uuid.UUID, session: SessionDep, settings: SettingsDep, links: UiLinksDep) -> ModelOut:
    """Make the model its project's champion: pipelines that follow the champion switch to it live."""
    model = get_or_404(session, Model, model_id)
    try:
        promote(session, model, tracking_uri(settings))
    except NotPromotable as error:
        raise HTTPException(status_code=409, detail=str(error)) from error
    except AliasNotMoved as error:
        session.rollback()
        raise HTTPException(status_code=503, detail=str(error)) from error
    session.commit()
    return model_out(model, links)


@router.delete("/models/{model_id}", status_code=204)
def delete_model(model_id: uuid.UUID, session: SessionDep, settings: SettingsDep, store: StoreDep,
                 orchestrator: OrchestratorDep) -> Response:
    model = get_or_404(session, Model, model_id)
    ensure_unused(session, Pipeline.model_id, model_id, "Model")
    training_job = model.job_id if model.status == "training" else None
    session.delete(model)
    session.flush()
    try:  # a deleted champion must not stay MLflow's champion
        withdraw_alias(model, tracking_uri(settings))
    except AliasNotMoved as error:
        session.rollback()
        raise HTTPException(status_code=503, detail=str(error)) from error
    session.commit()
    if training_job is not None:
        cancel_training_jobs(orchestrator, [training_job])
    # Files go only after the row is gone: a failure can orphan files, never leave a row without them.
    store.delete_prefix(model_prefix(model_id))
    return Response(status_code=204)


@router.get("/models/{model_id}/export", response_class=Response,
            responses={200: {"content": {"application/zip": {}}, "description": "The model archive"},
                       202: {"model": JobAccepted, "description": "An export job makes the archive"}})
def export_model(model_id: uuid.UUID, session: SessionDep, store: StoreDep, orchestrator: OrchestratorDep,
                 export_format: Annotated[Literal[EXPORT_FORMATS], Query(alias="format")],  # type: ignore[valid-type]
                 compression: Literal[COMPRESSIONS] | None = None) -> Response:  # type: ignore[valid-type]
    """The zip archive when it exists; otherwise (or while it is being made) 202 with the export job."""
    model = get_or_404(session, Model, model_id)
    if compression is not None and export_format != "openvino":
        raise HTTPException(status_code=422, detail="compression applies to the openvino format only")
    if model.status != "ready":
        raise HTTPException(status_code=409, detail=f"Model {model_id} is {model.status}, not ready")
    key = archive_key(model_id, export_format, compression)
    try:
        archive = store.open_stream(key)
    except FileNotFoundError:
        archive = None
    if archive is not None:
        # Streamed from the store: an archive of any size costs the API one chunk of memory per download.
        filename = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{model.name}-{export_name(export_format, compression)}.zip")
        return StreamingResponse(archive.chunks, media_type="application/zip",
                                 headers={"Content-Disposition": f'attachment; filename="{filename}"',
                                          "Content-Length": str(archive.size)})
    tags = [f"model:{model_id}", f"export:{export_name(export_format, compression)}"]
    with orchestration_errors():
        earlier = orchestrator.list_jobs(model.project_id, JobType.EXPORT, extra_tags=tags)
        active = [job for job in earlier if not job.finished]
        # Requests that saw the same history share a key, so concurrent ones start one job, not one each;
        # after a failed export the key changes and a new request retries.
        key = f"export:{model_id}:{export_name(export_format, compression)}:after:{earlier[0].id if earlier else '-'}"
        job_id = active[0].id if active else submit_job(
            session, orchestrator, JobType.EXPORT, model.project_id,
            {"model_id": str(model_id), "format": export_format, "compression": compression}, tags,
            idempotency_key=key)
    return JSONResponse(status_code=202, content=JobAccepted(job_id=job_id).model_dump(mode="json"))
