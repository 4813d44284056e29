"""The schedule page (/ui/projects/{id}/schedule): the training schedule form, its cron in plain words and
next runs, "run now", and the history of retraining decisions.

The schedule lives in Prefect; the page waits for it only briefly (api/services/training_schedules.py,
`quick_schedule`) and reads the history from the jobs index in the database, so it answers fast
even when Prefect is slow or down. schedule.js follows unfinished runs until their decision is known.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from cron_descriptor import FormatException, Options, get_description
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session

from api.console.forms import detail_text, field_errors, require_same_origin, see_other
from api.console.navigation import PROJECT_TABS
from api.console.templating import render
from api.deps import SessionDep, SettingsDep, StoreDep, get_or_404
from api.schemas.training_schedule import TrainingScheduleIn
from api.services.jobs import OrchestratorDep
from api.services.training_schedules import ScheduleRead, quick_schedule, run_now, set_schedule
from infra.database.models import Project
from infra.orchestration import JobType, Orchestrator
from infra.orchestration.job_index import indexed_page
from infra.orchestration.schedules import ProjectSchedule
from infra.storage import ObjectStore

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_same_origin)])

HISTORY_SIZE = 20
FIELDS = ("cron", "timezone", "architecture", "parameters", "promotion", "min_improvement", "min_new_images",
          "active")
NEW_SCHEDULE = {"cron": "0 2 * * *", "timezone": "UTC", "architecture": "auto", "parameters": "{}",
                "promotion": "auto", "min_improvement": "0.01", "min_new_images": "20", "active": "on"}


def cron_words(cron: str) -> str | None:
    """The cron expression in plain words ("At 02:00, Monday through Friday"); None when it does not parse."""
    options = Options()
    options.use_24hour_time_format = True
    try:
        return get_description(cron, options)
    except (FormatException, ValueError, KeyError, IndexError):
        return None


def _values(schedule: ProjectSchedule | None) -> dict[str, str]:
    if schedule is None:
        return dict(NEW_SCHEDULE)
    settings = schedule.parameters
    return {"cron": schedule.cron, "timezone": schedule.timezone, "architecture": settings.get("architecture", "auto"),
            "parameters": json.dumps(settings.get("parameters") or {}), "promotion": settings.get("promotion", "auto"),
            "min_improvement": f"{settings.get('min_improvement', 0.0):g}",
            "min_new_images": str(settings.get("min_new_images", 0)), "active": "on" if schedule.active else ""}


def _page(request: Request, session: Session, orchestrator: Orchestrator, store: ObjectStore, project: Project,
          values: dict[str, str] | None = None, errors: dict[str, str] | None = None,
          problem: str | None = None, status_code: int = 200) -> HTMLResponse:
    read = quick_schedule(orchestrator, store, project.id)
    schedule = read.schedule
    history = indexed_page(session, project.id, JobType.RETRAINING, None, HISTORY_SIZE, 0)
    return render(request, "schedule.html", {
        "section": "projects", "tab": "schedule", "tabs": PROJECT_TABS, "project": project, "schedule": schedule,
        "words": cron_words(schedule.cron) if schedule else None, "next_runs": _next_runs(read),
        "values": values or _values(schedule), "errors": errors or {}, "history": history,
        "problem": problem or read.problem, "ran": request.query_params.get("ran"),
        "saved": request.query_params.get("saved"),
    }, status_code=status_code)


def _next_runs(read: ScheduleRead) -> list[Any]:
    return read.schedule.next_runs() if read.schedule is not None else []


@router.get("/ui/projects/{project_id}/schedule", response_class=HTMLResponse)
def schedule_page(request: Request, project_id: uuid.UUID, session: SessionDep, store: StoreDep,
                  orchestrator: OrchestratorDep) -> HTMLResponse:
    return _page(request, session, orchestrator, store, get_or_404(session, Project, project_id))


def _schedule_errors(error: HTTPException) -> tuple[dict[str, str], str | None]:
    """A service's refusal: at its field (cron, timezone, architecture) or, for Prefect being down, above the form."""
    text = detail_text(error)
    if error.status_code != 422:
        return {}, text
    lowered = text.lower()
    if "timezone" in lowered:
        return {"timezone": text}, None
    if "parameter" in lowered or "candidates" in lowered:
        return {"parameters": text}, None
    if "architecture" in lowered or "train here" in lowered or "unknown" in lowered:
        return {"architecture": text}, None
    return {"cron": text}, None


@router.post("/ui/projects/{project_id}/schedule", response_class=HTMLResponse)
async def save_schedule(request: Request, project_id: uuid.UUID, session: SessionDep, settings: SettingsDep,
                        store: StoreDep, orchestrator: OrchestratorDep) -> Response:
    project = get_or_404(session, Project, project_id)
    sent = await request.form()
    values = {key: str(sent.get(key, "")) for key in FIELDS}
    errors: dict[str, str] = {}
    try:
        parameters = json.loads(values["parameters"] or "{}")
        if not isinstance(parameters, dict):
            raise ValueError
    except ValueError:
        errors["parameters"] = 'parameters must be a JSON object, such as {} or {"backbone": "mobilenetv2_100"}'
        parameters = {}
    body = None
    try:
        body = TrainingScheduleIn.model_validate({
            "cron": values["cron"].strip(), "timezone": values["timezone"].strip() or "UTC",
            "architecture": values["architecture"].strip(), "parameters": parameters,
            "promotion": values["promotion"], "min_improvement": values["min_improvement"] or "0",
            "min_new_images": values["min_new_images"] or "0", "active": values["active"] == "on"})
    except ValidationError as error:
        errors = {**field_errors(error), **errors}
    problem = None
    if body is not None and not errors:
        try:
            set_schedule(session, settings, store, orchestrator, project_id, body)
            return see_other(request, f"/ui/projects/{project_id}/schedule?saved=1")
        except HTTPException as error:
            errors, problem = _schedule_errors(error)
    return _page(request, session, orchestrator, store, project, values, errors, problem,
                 status_code=422 if errors else 503)


@router.post("/ui/projects/{project_id}/schedule/run", response_class=HTMLResponse)
def run_schedule(request: Request, project_id: uuid.UUID, session: SessionDep, store: StoreDep,
                 orchestrator: OrchestratorDep) -> Response:
    project = get_or_404(session, Project, project_id)
    try:
        job_id = run_now(session, store, orchestrator, project_id)
    except HTTPException as error:  # 404 no schedule yet, 503 Prefect unreachable
        session.rollback()
        return _page(request, session, orchestrator, store, project, problem=detail_text(error),
                     status_code=error.status_code)
    session.commit()
    return see_other(request, f"/ui/projects/{project_id}/schedule?ran={job_id}")
