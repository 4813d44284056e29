"""Keep rows that wait on a job honest when the job ends without them.

A flow marks its own rows on success, failure and cancellation. When the process never gets the
chance (worker killed, machine lost: Prefect marks the run CRASHED), the model would stay
"training" forever; these helpers settle such rows from the job's final state.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from infra.database.models import Model, Snapshot
from infra.orchestration.client import Orchestrator
from infra.orchestration.jobs import Job, JobStatus

log = logging.getLogger(__name__)


def _reason(job: Job) -> str:
    if job.status is JobStatus.COMPLETED:
        return "the job ended without finishing this row"
    return job.error or job.status.value


def settle_rows(session: Session, jobs: Iterable[Job]) -> int:
    """Fail models still "training" and snapshots still "pending" whose job has finished."""
    finished = {job.id: job for job in jobs if job.finished}
    if not finished:
        return 0
    settled = 0
    for model in session.scalars(select(Model).where(Model.status == "training", Model.job_id.in_(finished))):
        model.status, model.error = "failed", _reason(finished[model.job_id])[:2000]
        settled += 1
    for snapshot in session.scalars(select(Snapshot).where(Snapshot.status == "pending",
                                                           Snapshot.job_id.in_(finished))):
        snapshot.status, snapshot.error = "failed", _reason(finished[snapshot.job_id])[:2000]
        settled += 1
    if settled:
        log.info("settled %d row(s) of finished jobs", settled)
    return settled


def waiting_job_ids(session: Session) -> set[uuid.UUID]:
    ids = set(session.scalars(select(Model.job_id).where(Model.status == "training", Model.job_id.is_not(None))))
    ids |= set(session.scalars(select(Snapshot.job_id).where(Snapshot.status == "pending",
                                                             Snapshot.job_id.is_not(None))))
    return ids


def settle_all(session: Session, orchestrator: Orchestrator) -> int:
    """One pass over every waiting row (run periodically by `serve`)."""
    ids = waiting_job_ids(session)
    return settle_rows(session, orchestrator.jobs_by_id(ids).values()) if ids else 0
