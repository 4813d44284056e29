"""The jobs index's rows on SQLite and PostgreSQL: upserts are idempotent and never replace a newer read
with an older one (several API processes and their pollers write the same rows), and pages come newest first."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from infra.database.engine import session_scope
from infra.orchestration.job_index import forget_jobs, list_project_jobs, record_jobs
from infra.orchestration.jobs import Job, JobStatus, JobType

START = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)


def _settled_page(url: str, project_id: uuid.UUID, **filters) -> list[Job]:
    """A page of settled rows is read without Prefect: no orchestrator is given."""
    with session_scope(url) as session:
        return list_project_jobs(session, None, project_id, **filters)  # type: ignore[arg-type]


def test_upserts_are_idempotent_and_never_go_back_in_time(database):
    project_id = uuid.uuid4()
    running = Job(id=uuid.uuid4(), type=JobType.TRAINING, status=JobStatus.RUNNING, project_id=project_id,
                  progress=0.5, metrics={"epoch": 1}, created_at=START, started_at=START + timedelta(seconds=2))
    read = [START + timedelta(seconds=10 * step) for step in range(5)]
    with session_scope(database) as session:
        assert record_jobs(session, [running], read[1]) == 1
    with session_scope(database) as session:
        assert record_jobs(session, [running], read[2]) == 0  # unchanged: nothing written
    done = replace(running, status=JobStatus.COMPLETED, progress=1.0, metrics={"epoch": 3, "image_auroc": 0.91},
                   finished_at=START + timedelta(seconds=30), settled=True)
    with session_scope(database) as session:
        assert record_jobs(session, [done], read[4]) == 1
    with session_scope(database) as session:  # a read taken earlier, written late (another process)
        record_jobs(session, [replace(running, progress=0.7)], read[3])
    assert _settled_page(database, project_id) == [done]


def test_pages_are_newest_first_and_filtered(database):
    project_id, other = uuid.uuid4(), uuid.uuid4()
    jobs = [Job(id=uuid.uuid4(), type=(JobType.TRAINING, JobType.EXPORT)[index % 2], status=JobStatus.COMPLETED,
                project_id=project_id, progress=1.0, metrics={"index": index},
                created_at=START + timedelta(minutes=index), finished_at=START + timedelta(minutes=index, seconds=5),
                settled=True) for index in range(7)]
    elsewhere = replace(jobs[0], id=uuid.uuid4(), project_id=other)
    with session_scope(database) as session:
        assert record_jobs(session, [*jobs, elsewhere], START + timedelta(hours=1)) == 8
    newest_first = jobs[::-1]
    assert _settled_page(database, project_id, limit=200) == newest_first
    assert _settled_page(database, project_id, limit=3, offset=2) == newest_first[2:5]
    assert _settled_page(database, project_id, job_type=JobType.EXPORT) == [job for job in newest_first
                                                                            if job.type is JobType.EXPORT]
    assert _settled_page(database, project_id, status=JobStatus.COMPLETED, limit=2) == newest_first[:2]
    assert _settled_page(database, project_id, status=JobStatus.FAILED) == []
    with session_scope(database) as session:
        forget_jobs(session, [jobs[6].id])
    assert _settled_page(database, project_id, limit=1) == [jobs[5]]
    assert _settled_page(database, other) == [elsewhere]
