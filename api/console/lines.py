"""The lines pages: /ui/projects/{id}/lines (every line with its state; create, edit, start, stop) and
/ui/projects/{id}/lines/{pipeline_id} (live view, metrics, score chart, threshold, capture).

A line is a pipeline with its own source and sink: the form creates or changes all three in one
transaction through the services the REST routes use, so a refused field leaves nothing written.
line.js makes the line view live: WebRTC video (webrtc.js), metrics from
`GET /api/active-pipelines/{id}` every second, the threshold slider as `PATCH /api/pipelines/{id}`.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.console.forms import detail_text, require_same_origin, see_other, text_fields
from api.console.line_form import (
    COLLECTION_MODES,
    FOLLOW_CHAMPION,
    NEW_LINE,
    SINK_TYPES,
    SOURCE_TYPES,
    LineForm,
    form_values,
    read_form,
)
from api.console.navigation import PROJECT_TABS
from api.console.templating import render
from api.deps import DecoderDep, SessionDep, SettingsDep, StoreDep, get_or_404
from api.schemas.configured import ConfiguredPatch
from api.schemas.pipelines import PipelineCreate, PipelinePatch
from api.services.active_runs import latest_runs, settle_silent, silence_note, start_line, stop_line
from api.services.captures import take_capture
from api.services.configured_resources import SINKS, SOURCES, ConfiguredResource, add_row, change_row
from api.services.jobs import OrchestratorDep
from api.services.pipelines import create_pipeline, project_pipelines, update_pipeline
from infra.active_pipelines import ACTIVE
from infra.configs import mask_config
from infra.database.models import ActivePipeline, Capture, Model, Pipeline, Project, Sink, Source
from infra.orchestration import Orchestrator
from infra.settings import Settings

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_same_origin)])

METRICS = (("fps", "FPS", "{:.1f}"), ("latency_ms_p50", "Latency p50", "{:.0f} ms"),
           ("latency_ms_p95", "Latency p95", "{:.0f} ms"), ("frames_processed", "Frames", "{:,}"),
           ("frames_dropped", "Dropped", "{:,}"), ("anomalies_detected", "Anomalies", "{:,}"),
           ("sink_errors", "Sink errors", "{:,}"), ("collected", "Collected", "{:,}"))


def _line_of(session: Session, project_id: uuid.UUID, pipeline_id: uuid.UUID) -> Pipeline:
    pipeline = get_or_404(session, Pipeline, pipeline_id)
    if pipeline.project_id != project_id:
        raise HTTPException(status_code=404, detail=f"line {pipeline_id} is not in this project")
    return pipeline


def _models(session: Session, project_id: uuid.UUID) -> list[Model]:
    return list(session.scalars(select(Model).where(Model.project_id == project_id, Model.status == "ready")
                                .order_by(Model.created_at.desc())))


def _form_page(request: Request, session: Session, project: Project, values: dict[str, str],
               errors: dict[str, str], pipeline: Pipeline | None = None, status_code: int = 200) -> HTMLResponse:
    models = _models(session, project.id)
    champion = next((model for model in models if model.champion), None)
    following = f"Follow the champion ({'now ' + champion.name if champion else 'none yet'})"
    model_options = [(FOLLOW_CHAMPION, following)] + [(str(model.id), f"{model.name} · {model.architecture}")
                                                      for model in models]
    return render(request, "line_form.html", {
        "section": "projects", "tab": "lines", "tabs": PROJECT_TABS, "project": project, "pipeline": pipeline,
        "values": values, "errors": errors, "model_options": model_options,
        "source_types": SOURCE_TYPES, "sink_types": SINK_TYPES,
        "collection_modes": COLLECTION_MODES,
    }, status_code=status_code)


class FieldRefused(Exception):
    """A service refused what one field of the form holds (its message goes next to that field)."""

    def __init__(self, field: str, error: HTTPException) -> None:
        super().__init__(detail_text(error))
        self.field = field


def _part_row(resource: ConfiguredResource, session: Session, settings: Settings, project_id: uuid.UUID,
              current: Source | Sink | None, body: Any, owner: uuid.UUID | None) -> Source | Sink:
    """The line's source or sink: changed in place when only this line uses it and its type stays, else new."""
    if current is not None and current.type == body.type:
        users = session.scalars(select(Pipeline.id).where(resource.pipeline_column == current.id)).all()
        if set(users) <= {owner}:
            return change_row(resource, session, settings, current,
                              ConfiguredPatch(name=current.name, config=body.config.model_dump(mode="json")))
    return add_row(resource, session, settings, project_id, body)


def _save(session: Session, settings: Settings, project_id: uuid.UUID, form: LineForm,
          pipeline: Pipeline | None) -> Pipeline:
    """Write source, sink and pipeline (flushed; the caller commits, or rolls all back on a FieldRefused)."""
    owner = pipeline.id if pipeline else None
    try:
        source = _part_row(SOURCES, session, settings, project_id,
                           session.get(Source, pipeline.source_id) if pipeline else None, form.source, owner)
    except HTTPException as error:  # outside the allowed paths, a refused host, a masked secret on a new row
        raise FieldRefused("source_address", error) from error
    try:
        sink = _part_row(SINKS, session, settings, project_id,
                         session.get(Sink, pipeline.sink_id) if pipeline else None, form.sink, owner)
    except HTTPException as error:
        raise FieldRefused("sink_address", error) from error
    model = {"follow_champion": form.follow_champion, "model_id": form.model_id}
    try:
        if pipeline is None:
            return create_pipeline(session, project_id, PipelineCreate(
                name=form.name, source_id=source.id, sink_id=sink.id, config=form.config, **model))
        return update_pipeline(session, pipeline, PipelinePatch(
            name=form.name, source_id=source.id, sink_id=sink.id, config=form.config, **model))
    except HTTPException as error:  # the model: unknown, of another project, or not the champion
        raise FieldRefused("model", error) from error


def _submit(request: Request, session: Session, settings: Settings, project: Project, values: dict[str, str],
            pipeline: Pipeline | None) -> Response:
    form = read_form(values, pipeline.config if pipeline else None)
    if not form.errors:
        try:
            saved = _save(session, settings, project.id, form, pipeline)
            session.commit()
            return see_other(request, f"/ui/projects/{project.id}/lines/{saved.id}")
        except FieldRefused as refusal:
            session.rollback()  # nothing half-written: source, sink and line go together or not at all
            form.errors[refusal.field] = str(refusal)
    return _form_page(request, session, project, form.values, form.errors, pipeline, status_code=422)


@router.get("/ui/projects/{project_id}/lines", response_class=HTMLResponse)
def lines_page(request: Request, project_id: uuid.UUID, session: SessionDep,
               orchestrator: OrchestratorDep) -> HTMLResponse:
    return _lines_page(request, session, project_id, orchestrator=orchestrator)


def _lines_page(request: Request, session: SessionDep, project_id: uuid.UUID, problem: str | None = None,
                status_code: int = 200, orchestrator: Orchestrator | None = None) -> HTMLResponse:
    """The lines list; with `orchestrator`, runs that stopped reporting are settled first (a dead line shows ended)."""
    project = get_or_404(session, Project, project_id)
    lines = project_pipelines(session, project_id)
    runs = latest_runs(session, [line.id for line in lines])
    if orchestrator is not None:
        settle_silent(session, orchestrator, runs.values())
    sources = {row.id: row for row in session.scalars(select(Source).where(Source.project_id == project_id))}
    sinks = {row.id: row for row in session.scalars(select(Sink).where(Sink.project_id == project_id))}
    models = {row.id: row.name for row in session.execute(select(Model.id, Model.name)
                                                          .where(Model.project_id == project_id))}
    return render(request, "lines.html", {
        "section": "projects", "tab": "lines", "tabs": PROJECT_TABS, "project": project, "lines": lines,
        "runs": runs, "notes": {line_id: run.message or silence_note(run) for line_id, run in runs.items()},
        "sources": sources, "sinks": sinks, "models": models, "active_states": ACTIVE,
        "problem": problem, "masked": mask_config,
    }, status_code=status_code)


@router.get("/ui/projects/{project_id}/lines/new", response_class=HTMLResponse)
def new_line(request: Request, project_id: uuid.UUID, session: SessionDep) -> HTMLResponse:
    return _form_page(request, session, get_or_404(session, Project, project_id), dict(NEW_LINE), {})


@router.post("/ui/projects/{project_id}/lines", response_class=HTMLResponse)
async def create_line(request: Request, project_id: uuid.UUID, session: SessionDep, settings: SettingsDep
                      ) -> Response:
    values = await text_fields(request)
    return _submit(request, session, settings, get_or_404(session, Project, project_id), values, None)


@router.get("/ui/projects/{project_id}/lines/{pipeline_id}/edit", response_class=HTMLResponse)
def edit_line(request: Request, project_id: uuid.UUID, pipeline_id: uuid.UUID, session: SessionDep
              ) -> HTMLResponse:
    pipeline = _line_of(session, project_id, pipeline_id)
    values = form_values(pipeline, get_or_404(session, Source, pipeline.source_id),
                         get_or_404(session, Sink, pipeline.sink_id))
    return _form_page(request, session, get_or_404(session, Project, project_id), values, {}, pipeline)


@router.post("/ui/projects/{project_id}/lines/{pipeline_id}/edit", response_class=HTMLResponse)
async def update_line(request: Request, project_id: uuid.UUID, pipeline_id: uuid.UUID, session: SessionDep,
                      settings: SettingsDep) -> Response:
    values = await text_fields(request)
    pipeline = _line_of(session, project_id, pipeline_id)
    return _submit(request, session, settings, get_or_404(session, Project, project_id), values, pipeline)


def _back(request: Request, session: SessionDep, project_id: uuid.UUID, pipeline_id: uuid.UUID, back: str,
          refusal: HTTPException | None = None) -> Response:
    """To the page the button was on (the list or the line view); a refusal shows there at once, with its
    status (the message never travels in the URL, where a crafted link could put any text on the page)."""
    if refusal is not None:
        problem = detail_text(refusal)
        if back == "view":
            return _line_page(request, session, project_id, pipeline_id, problem=problem,
                              status_code=refusal.status_code)
        return _lines_page(request, session, project_id, problem, refusal.status_code)
    return see_other(request, f"/ui/projects/{project_id}/lines" + (f"/{pipeline_id}" if back == "view" else ""))


@router.post("/ui/projects/{project_id}/lines/{pipeline_id}/start")
def start(request: Request, project_id: uuid.UUID, pipeline_id: uuid.UUID, session: SessionDep,
          orchestrator: OrchestratorDep, back: Annotated[str, Form()] = "") -> Response:
    _line_of(session, project_id, pipeline_id)
    try:
        start_line(session, orchestrator, pipeline_id)
    except HTTPException as error:  # 409 running or no ready model, 503 Prefect unreachable
        session.rollback()
        return _back(request, session, project_id, pipeline_id, back, error)
    return _back(request, session, project_id, pipeline_id, back)


@router.post("/ui/projects/{project_id}/lines/{pipeline_id}/stop")
def stop(request: Request, project_id: uuid.UUID, pipeline_id: uuid.UUID, session: SessionDep,
         orchestrator: OrchestratorDep, active_id: Annotated[str, Form()] = "",
         back: Annotated[str, Form()] = "") -> Response:
    row = _run_of(session, project_id, pipeline_id, active_id)
    try:
        stop_line(session, orchestrator, row.id)
    except HTTPException as error:  # 409 already ended, 503 Prefect unreachable
        session.rollback()
        return _back(request, session, project_id, pipeline_id, back, error)
    return _back(request, session, project_id, pipeline_id, back)


def _run_of(session: SessionDep, project_id: uuid.UUID, pipeline_id: uuid.UUID, active_id: str) -> ActivePipeline:
    """The run a button names, which must be a run of this project's line (404 otherwise)."""
    _line_of(session, project_id, pipeline_id)
    row = session.get(ActivePipeline, _uuid(active_id, "active_id"))
    if row is None or row.pipeline_id != pipeline_id:
        raise HTTPException(status_code=404, detail=f"line {pipeline_id} has no run {active_id}")
    return row


def _uuid(value: str, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise HTTPException(status_code=422, detail=f"{name} must be an id") from None


def score_points(scores: list[float], width: int = 300, height: int = 80) -> str:
    """The recent scores as SVG polyline points (0 at the bottom, 1 at the top); line.js draws the same."""
    if len(scores) < 2:
        return ""
    step = width / (len(scores) - 1)
    return " ".join(f"{index * step:.1f},{height - min(max(score, 0.0), 1.0) * height:.1f}"
                    for index, score in enumerate(scores))


@router.get("/ui/projects/{project_id}/lines/{pipeline_id}", response_class=HTMLResponse)
def line_view(request: Request, project_id: uuid.UUID, pipeline_id: uuid.UUID, session: SessionDep,
              orchestrator: OrchestratorDep, capture: str | None = None) -> HTMLResponse:
    return _line_page(request, session, project_id, pipeline_id, capture, orchestrator=orchestrator)


def _line_page(request: Request, session: SessionDep, project_id: uuid.UUID, pipeline_id: uuid.UUID,
               capture: str | None = None, problem: str | None = None, status_code: int = 200,
               orchestrator: Orchestrator | None = None) -> HTMLResponse:
    project = get_or_404(session, Project, project_id)
    pipeline = _line_of(session, project_id, pipeline_id)
    run = latest_runs(session, [pipeline.id]).get(pipeline.id)
    if run is not None and orchestrator is not None:
        settle_silent(session, orchestrator, [run])
    shot = session.get(Capture, _uuid(capture, "capture")) if capture else None
    threshold = pipeline.config.get("threshold", 0.5)
    metrics = dict(run.metrics or {}) if run is not None else {}
    return render(request, "line.html", {
        "section": "projects", "tab": "lines", "tabs": PROJECT_TABS, "project": project, "pipeline": pipeline,
        "run": run, "note": (run.message or silence_note(run)) if run is not None else None,
        "live": run is not None and run.status in ACTIVE, "metrics": metrics, "metric_rows": METRICS,
        "points": score_points(metrics.get("recent_scores") or []), "threshold": threshold,
        "model": session.get(Model, pipeline.model_id) if pipeline.model_id else None,
        "source": session.get(Source, pipeline.source_id), "sink": session.get(Sink, pipeline.sink_id),
        "capture": shot if shot is not None and run is not None and shot.active_pipeline_id == run.id else None,
        "problem": problem,
    }, status_code=status_code)


@router.post("/ui/projects/{project_id}/lines/{pipeline_id}/threshold")
def set_threshold(request: Request, project_id: uuid.UUID, pipeline_id: uuid.UUID, session: SessionDep,
                  threshold: Annotated[str, Form()] = "") -> Response:
    """The slider without scripts: the running line applies the new threshold within a second."""
    pipeline = _line_of(session, project_id, pipeline_id)
    try:
        value = float(threshold)
    except ValueError:
        return _back(request, session, project_id, pipeline_id, "view",
                     HTTPException(status_code=422, detail="threshold must be a number from 0 to 1"))
    try:
        update_pipeline(session, pipeline, PipelinePatch(config={"threshold": value}))
    except HTTPException as error:
        session.rollback()
        return _back(request, session, project_id, pipeline_id, "view", error)
    session.commit()
    return _back(request, session, project_id, pipeline_id, "view")


@router.post("/ui/projects/{project_id}/lines/{pipeline_id}/capture")
def capture_frame(request: Request, project_id: uuid.UUID, pipeline_id: uuid.UUID, session: SessionDep,
                  store: StoreDep, decoder: DecoderDep, orchestrator: OrchestratorDep,
                  active_id: Annotated[str, Form()] = "") -> Response:
    row = _run_of(session, project_id, pipeline_id, active_id)
    try:
        shot = take_capture(session, store, decoder, orchestrator, row.id)
    except HTTPException as error:
        session.rollback()
        return _back(request, session, project_id, pipeline_id, "view", error)
    return see_other(request, f"/ui/projects/{project_id}/lines/{pipeline_id}?capture={shot.id}")
