"""Jobs: Prefect flow runs. One job is read and cancelled through the Prefect API; lists (a project's,
or every project's) are read from the jobs index (infra/orchestration/job_index.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from api.deps import SessionDep, get_or_404
from api.links import UiLinksDep, job_out
from api.routing import API_PREFIX
from api.schemas.jobs import JobOut
from api.services.jobs import OrchestratorDep, jobs_page, orchestration_errors
from api.services.jobs import cancel_job as cancel_job_and_rows
from infra.database.models import Project
from infra.orchestration import JobStatus, JobType
from infra.orchestration.job_index import record_jobs
from infra.orchestration.reconcile import settle_rows

router = APIRouter(prefix=API_PREFIX, tags=["jobs"])


@dataclass(frozen=True)
class JobsQuery:
    """The filters and page of a jobs list (the same query parameters for one project's and for all)."""

    job_type: JobType | None
    status: JobStatus | None
    limit: int
    offset: int


def jobs_query(job_type: Annotated[JobType | None, Query(alias="type")] = None, status: JobStatus | None = None,
               limit: Annotated[int, Query(ge=1, le=200)] = 20, offset: Annotated[int, Query(ge=0)] = 0) -> JobsQuery:
    return JobsQuery(job_type, status, limit, offset)


JobsQueryDep = Annotated[JobsQuery, Depends(jobs_query)]


@router.get("/projects/{project_id}/jobs", response_model=list[JobOut])
def list_jobs(project_id: uuid.UUID, session: SessionDep, orchestrator: OrchestratorDep, links: UiLinksDep,
              query: JobsQueryDep) -> list[JobOut]:
    """Newest first, a page at a time, from the jobs index: a page of settled jobs asks Prefect nothing."""
    get_or_404(session, Project, project_id)
    jobs = jobs_page(session, orchestrator, project_id, query.job_type, query.status, query.limit, query.offset)
    return [job_out(job, links) for job in jobs]


@router.get("/jobs", response_model=list[JobOut])
def list_all_jobs(session: SessionDep, orchestrator: OrchestratorDep, links: UiLinksDep,
                  query: JobsQueryDep) -> list[JobOut]:
    """Every project's jobs, newest first, a page at a time, from the jobs index (as the project's list)."""
    jobs = jobs_page(session, orchestrator, None, query.job_type, query.status, query.limit, query.offset)
    return [job_out(job, links) for job in jobs]


@router.get("/jobs/{job_id}", response_model=JobOut)
def get_job(job_id: uuid.UUID, session: SessionDep, orchestrator: OrchestratorDep, links: UiLinksDep) -> JobOut:
    """Read from Prefect (exact), and written back to the jobs index."""
    with orchestration_errors():
        job = orchestrator.get_job(job_id)
    record_jobs(session, [job])
    settle_rows(session, [job])
    return job_out(job, links)


@router.delete("/jobs/{job_id}", status_code=204)
def cancel_job(job_id: uuid.UUID, session: SessionDep, orchestrator: OrchestratorDep) -> Response:
    """The run ends cancelled within seconds; the rows it was producing end failed at once."""
    cancel_job_and_rows(session, orchestrator, job_id)
    return Response(status_code=204)
