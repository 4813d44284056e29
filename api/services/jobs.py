"""Shared by the routers that start or read jobs: the Prefect client and its HTTP errors."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from sqlalchemy import update
from sqlalchemy.orm import Session

from infra.database.models import Base, Model, Snapshot
from infra.orchestration import (
    Job,
    JobFinished,
    JobNotFound,
    JobStatus,
    JobType,
    OrchestrationUnavailable,
    Orchestrator,
)
from infra.orchestration.job_index import list_project_jobs, record_jobs
from infra.orchestration.reconcile import settle_rows

log = logging.getLogger(__name__)
_lock = threading.Lock()


def get_orchestrator(request: Request) -> Orchestrator:
    """One Prefect client per app, made on first use: the API starts (and serves data) while Prefect is down."""
    state = request.app.state
    with _lock:
        if getattr(state, "orchestrator", None) is None:
            state.orchestrator = Orchestrator.from_settings(state.settings)
    return state.orchestrator


OrchestratorDep = Annotated[Orchestrator, Depends(get_orchestrator)]


@contextmanager
def orchestration_errors() -> Iterator[None]:
    """Prefect unreachable → 503; unknown job → 404; cancelling a finished job → 409."""
    try:
        yield
    except JobNotFound as error:
        raise HTTPException(status_code=404, detail=str(error)) from error
    except JobFinished as error:
        raise HTTPException(status_code=409, detail=str(error)) from error
    except OrchestrationUnavailable as error:
        raise HTTPException(status_code=503, detail=f"Job orchestration unavailable: {error}") from error


def submit_job(session: Session, orchestrator: Orchestrator, job_type: JobType, project_id: uuid.UUID,
               parameters: dict[str, Any], extra_tags: Sequence[str] = (),
               idempotency_key: str | None = None) -> uuid.UUID:
    """Submit a job and write it to the jobs index in the request's transaction (listed at once)."""
    job = orchestrator.submit_job(job_type, project_id, parameters, extra_tags, idempotency_key)
    record_jobs(session, [job])
    return job.id


def submit_or_withdraw(session: Session, orchestrator: Orchestrator, rows: Sequence[Base], job_type: JobType,
                       project_id: uuid.UUID, parameters: dict[str, Any], extra_tags: Sequence[str] = ()) -> uuid.UUID:
    """Submit the job producing `rows` (already committed, so the flow can read them).

    When Prefect refuses, the rows are deleted again and the client gets a 503: nothing half-written.
    """
    try:
        return submit_job(session, orchestrator, job_type, project_id, parameters, extra_tags)
    except OrchestrationUnavailable as error:
        for row in rows:
            session.delete(row)
        session.commit()
        raise HTTPException(status_code=503, detail=f"Job orchestration unavailable: {error}") from error


def cancel_training_jobs(orchestrator: Orchestrator, job_ids: Sequence[uuid.UUID]) -> None:
    """Best effort, for jobs whose model rows were just deleted: stop the compute.

    Without the cancel a training flow still finds its row gone before marking it ready and removes
    what it wrote; the cancel only saves the work.
    """
    for job_id in job_ids:
        try:
            orchestrator.cancel(job_id)
        except (JobFinished, JobNotFound):
            continue
        except OrchestrationUnavailable:
            log.warning("could not cancel training job %s of a deleted model", job_id)


def cancel_job(session: Session, orchestrator: Orchestrator, job_id: uuid.UUID) -> None:
    """Ask Prefect to cancel the run (404 unknown, 409 finished, 503 unreachable); the rows it was producing
    end failed at once."""
    with orchestration_errors():
        record_jobs(session, [orchestrator.cancel(job_id)])
    session.execute(update(Model).where(Model.job_id == job_id, Model.status == "training")
                    .values(status="failed", error="cancelled"))
    session.execute(update(Snapshot).where(Snapshot.job_id == job_id, Snapshot.status == "pending")
                    .values(status="failed", error="cancelled"))


def jobs_page(session: Session, orchestrator: Orchestrator, project_id: uuid.UUID | None, job_type: JobType | None,
              status: JobStatus | None, limit: int, offset: int) -> list[Job]:
    """A page of the jobs index (one project's, or every project's with None), refreshed where unsettled;
    rows of jobs found finished are settled too."""
    with orchestration_errors():
        jobs = list_project_jobs(session, orchestrator, project_id, job_type, status, limit=limit, offset=offset)
    settle_rows(session, jobs)
    return jobs
