"""The models page (/ui/projects/{id}/models): every model with its state, data, metrics and links; promote,
export (format, precision) with a download once the archive is made, and delete after a confirmation.

Every action is a plain form posting here and calls the model services the REST routes call
(api/services/models.py); models.js follows a running export and shows its download without a reload.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.console.forms import detail_text, require_same_origin, see_other
from api.console.navigation import PROJECT_TABS
from api.console.templating import render
from api.deps import SessionDep, SettingsDep, StoreDep, get_or_404
from api.links import UiLinksDep
from api.services import models as model_service
from api.services.jobs import OrchestratorDep
from infra.database.models import Model, Pipeline, Project
from infra.model_files import COMPRESSIONS, EXPORT_FORMATS, archive_key, export_name
from infra.ui_links import UiLinks

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_same_origin)])

# Precision of an export: "fp32" is the model as trained (no compression); the others apply to OpenVINO only.
PRECISIONS = ("fp32", *COMPRESSIONS)
METRIC_COLUMNS = (("image_auroc", "Image AUROC"), ("image_f1", "Image F1"), ("pixel_auroc", "Pixel AUROC"),
                  ("aupro", "AUPRO"))


def backbone_of(model: Model) -> str | None:
    backbone = (model.parameters or {}).get("backbone")
    return str(backbone) if backbone else None


def models_context(session: Session, project: Project, links: UiLinks) -> dict[str, Any]:
    """What the models page and its error answers show."""
    rows = model_service.project_models(session, project.id)
    return {"section": "projects", "tab": "models", "tabs": PROJECT_TABS, "project": project, "models": rows,
            "counts": model_service.split_counts(session, [model.snapshot_id for model in rows]),
            "links": links, "metric_columns": METRIC_COLUMNS, "backbone_of": backbone_of,
            "formats": EXPORT_FORMATS, "precisions": PRECISIONS, "errors": {}, "notice": None}


@router.get("/ui/projects/{project_id}/models", response_class=HTMLResponse)
def models_page(request: Request, project_id: uuid.UUID, session: SessionDep, links: UiLinksDep,
                done: str | None = None, model: uuid.UUID | None = None, export_job: uuid.UUID | None = None,
                format: str | None = None, precision: str | None = None) -> HTMLResponse:  # noqa: A002
    context = models_context(session, get_or_404(session, Project, project_id), links)
    named = session.get(Model, model) if model is not None else None
    if done == "deleted":
        context["notice"] = "The model was deleted, with its files."
    elif done == "promoted" and named is not None:
        context["notice"] = f"{named.name} is now the champion: lines that follow the champion use it."
    if export_job is not None and named is not None and format in EXPORT_FORMATS and precision in PRECISIONS:
        context["export"] = {"job_id": export_job, "model": named, "format": format, "precision": precision,
                             "download": _download_path(named.id, format, precision)}
    return render(request, "models.html", context)


def _refused(request: Request, session: Session, links: UiLinks, model: Model, error: HTTPException,
             field: str = "action") -> HTMLResponse:
    """The models page again with the API's message next to the model's form; nothing was changed."""
    session.rollback()
    context = models_context(session, get_or_404(session, Project, model.project_id), links)
    context["errors"] = {model.id: {field: detail_text(error)}}
    return render(request, "models.html", context, status_code=error.status_code)


@router.post("/ui/models/{model_id}/promote", response_class=HTMLResponse)
def promote(request: Request, model_id: uuid.UUID, session: SessionDep, settings: SettingsDep,
            links: UiLinksDep) -> Response:
    model = get_or_404(session, Model, model_id)
    try:
        model_service.promote_model(session, settings, model)
    except HTTPException as error:  # 409 not ready, 503 MLflow refused: nothing changed
        return _refused(request, session, links, model, error)
    return see_other(request, f"/ui/projects/{model.project_id}/models?"
                              + urlencode({"done": "promoted", "model": model.id}))


def _compression(export_format: str, precision: str) -> str | None:
    """The REST `compression` of a precision (422 when it does not go with the format)."""
    if precision not in PRECISIONS:
        raise HTTPException(status_code=422, detail=f"precision must be one of {', '.join(PRECISIONS)}")
    if export_format not in EXPORT_FORMATS:
        raise HTTPException(status_code=422, detail=f"format must be one of {', '.join(EXPORT_FORMATS)}")
    if precision != "fp32" and export_format != "openvino":
        raise HTTPException(status_code=422, detail=f"{precision} applies to the openvino format only")
    return None if precision == "fp32" else precision


def _download_path(model_id: uuid.UUID, export_format: str, precision: str) -> str:
    return f"/ui/models/{model_id}/download?" + urlencode({"format": export_format, "precision": precision})


@router.post("/ui/models/{model_id}/export", response_class=HTMLResponse)
def export(request: Request, model_id: uuid.UUID, session: SessionDep, store: StoreDep,
           orchestrator: OrchestratorDep, links: UiLinksDep, format: Annotated[str, Form()] = "openvino",  # noqa: A002
           precision: Annotated[str, Form()] = "fp32") -> Response:
    """Start (or join) the export job, then show the models page following it; a made archive downloads at once."""
    model = get_or_404(session, Model, model_id)
    try:
        compression = _compression(format, precision)
        model_service.check_exportable(model, format, compression)
        if store.exists(archive_key(model.id, format, compression)):
            return see_other(request, _download_path(model.id, format, precision))
        job_id = model_service.export_job(session, orchestrator, model, format, compression)
    except HTTPException as error:  # bad precision, not ready, Prefect unreachable
        return _refused(request, session, links, model, error, "export")
    session.commit()
    return see_other(request, f"/ui/projects/{model.project_id}/models?" + urlencode(
        {"model": model.id, "export_job": job_id, "format": format, "precision": precision}) + f"#model-{model.id}")


@router.get("/ui/models/{model_id}/download", response_class=HTMLResponse)
def download(request: Request, model_id: uuid.UUID, session: SessionDep, store: StoreDep, links: UiLinksDep,
             format: str = "openvino", precision: str = "fp32") -> Response:  # noqa: A002
    """The archive when made; otherwise the models page says it is still being made."""
    model = get_or_404(session, Model, model_id)
    try:
        compression = _compression(format, precision)
        model_service.check_exportable(model, format, compression)
    except HTTPException as error:
        return _refused(request, session, links, model, error, "export")
    archive = model_service.export_archive(store, model, format, compression)
    if archive is None:
        not_yet = HTTPException(status_code=409, detail=f"The {export_name(format, compression)} archive is not "
                                                        "made yet: export it first, or wait for its export job")
        return _refused(request, session, links, model, not_yet, "export")
    return model_service.archive_response(archive)


def _delete_context(session: Session, model: Model) -> dict[str, Any]:
    lines = session.scalars(select(Pipeline.name).where(Pipeline.model_id == model.id).order_by(Pipeline.name))
    return {"section": "projects", "model": model, "project": session.get(Project, model.project_id),
            "lines": list(lines), "errors": {}}


@router.get("/ui/models/{model_id}/delete", response_class=HTMLResponse)
def confirm_delete(request: Request, model_id: uuid.UUID, session: SessionDep) -> HTMLResponse:
    return render(request, "model_delete.html", _delete_context(session, get_or_404(session, Model, model_id)))


@router.post("/ui/models/{model_id}/delete", response_class=HTMLResponse)
def delete(request: Request, model_id: uuid.UUID, session: SessionDep, settings: SettingsDep, store: StoreDep,
           orchestrator: OrchestratorDep) -> Response:
    model = get_or_404(session, Model, model_id)
    project_id = model.project_id
    try:
        model_service.delete_model(session, settings, store, orchestrator, model)
    except HTTPException as error:  # 409 a line uses it, 503 MLflow: nothing was deleted
        session.rollback()
        context = _delete_context(session, get_or_404(session, Model, model_id))
        context["errors"] = {"confirm": detail_text(error)}
        return render(request, "model_delete.html", context, status_code=error.status_code)
    return see_other(request, f"/ui/projects/{project_id}/models?done=deleted")
