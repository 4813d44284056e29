"""The jobs page (/ui/jobs): every project's jobs with type, state, progress, duration and links; cancel.

Read from the jobs index like `GET /api/jobs`; jobs.js refreshes the unfinished rows from
`GET /api/jobs/{id}` every two seconds.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.console.forms import choice, detail_text, kept_query, require_same_origin, see_other
from api.console.templating import render
from api.deps import SessionDep
from api.links import UiLinksDep
from api.services.jobs import OrchestratorDep, cancel_job, jobs_page
from infra.database.models import Model, Project
from infra.orchestration import Job, JobStatus, JobType, Orchestrator
from infra.orchestration.job_index import indexed_page

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_same_origin)])

PAGE_SIZE = 50
FILTER_KEYS = ("status", "type")


def duration_s(job: Job, now: datetime) -> float | None:
    if job.started_at is None:
        return None
    return ((job.finished_at or now) - job.started_at).total_seconds()


def _page(session: Session, orchestrator: Orchestrator, status: JobStatus | None, job_type: JobType | None,
          number: int) -> tuple[list[Job], bool, str | None]:
    """A page of jobs (and whether another follows); the index's last known state when Prefect does not answer."""
    offset = (number - 1) * PAGE_SIZE
    try:
        jobs, problem = jobs_page(session, orchestrator, None, job_type, status, PAGE_SIZE + 1, offset), None
    except HTTPException as error:
        if error.status_code != 503:
            raise
        jobs = indexed_page(session, None, job_type, status, PAGE_SIZE + 1, offset)
        problem = f"{detail_text(error)}. Showing the last known state."
    return jobs[:PAGE_SIZE], len(jobs) > PAGE_SIZE, problem


def _jobs_context(session: Session, orchestrator: Orchestrator, status: str | None, job_type: str | None,
                  number: int) -> dict[str, Any]:
    number = max(1, number)
    status_value = choice(status, [member.value for member in JobStatus], "status")
    type_value = choice(job_type, [member.value for member in JobType], "type")
    jobs, more, problem = _page(session, orchestrator, JobStatus(status_value) if status_value else None,
                                JobType(type_value) if type_value else None, number)
    project_ids = {job.project_id for job in jobs if job.project_id}
    projects = dict(session.execute(select(Project.id, Project.name).where(Project.id.in_(project_ids))).all()) \
        if project_ids else {}
    job_ids = [job.id for job in jobs]
    models = {row.job_id: row for row in session.execute(
        select(Model.id, Model.name, Model.job_id).where(Model.job_id.in_(job_ids)))} if job_ids else {}
    now = datetime.now(UTC)
    filters = {key: value for key, value in (("status", status), ("type", job_type)) if value}
    filter_query = urlencode(filters)
    return {"section": "jobs", "jobs": jobs, "projects": projects, "models": models, "now": now,
            "durations": {job.id: duration_s(job, now) for job in jobs}, "number": number, "more": more,
            "problem": problem, "statuses": [member.value for member in JobStatus],
            "types": [member.value for member in JobType], "filters": filters,
            "filter_query": filter_query, "page_query": urlencode({**filters, "page": number})}


@router.get("/ui/jobs", response_class=HTMLResponse)
def jobs_list(request: Request, session: SessionDep, orchestrator: OrchestratorDep, links: UiLinksDep,
              status: str | None = None, type: str | None = None, page: int = 1) -> HTMLResponse:  # noqa: A002
    context = _jobs_context(session, orchestrator, status, type, page)
    return render(request, "jobs.html", {**context, "links": links})


@router.post("/ui/jobs/{job_id}/cancel", response_class=HTMLResponse)
def cancel(request: Request, job_id: uuid.UUID, session: SessionDep, orchestrator: OrchestratorDep,
           links: UiLinksDep, back: Annotated[str, Form()] = "") -> Response:
    try:
        cancel_job(session, orchestrator, job_id)
    except HTTPException as error:  # 404 unknown, 409 already finished, 503 Prefect unreachable
        session.rollback()
        context = _jobs_context(session, orchestrator, None, None, 1)
        context["problem"] = detail_text(error)
        return render(request, "jobs.html", {**context, "links": links}, status_code=error.status_code)
    session.commit()
    query = kept_query(back, (*FILTER_KEYS, "page"))
    return see_other(request, f"/ui/jobs{'?' + query if query else ''}")
