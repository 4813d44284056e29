"""The jobs index: a project's jobs list from our own database instead of a Prefect query per request.

A job is a Prefect flow run and Prefect stays the truth; the `jobs` table (`JobRecord`) holds what
the list shows. The API writes it through when it submits, cancels or reads one job, and
`JobIndexPoller` (job_poller.py) keeps it in step about every second, which is how runs created
outside the API (schedules, subflows, the Prefect UI) get in. A *settled* row (finished, and read
well after it ended: `jobs.is_settled`) never changes, so a page of settled rows is served without
asking Prefect; any other row on a page is refreshed first (one `jobs_by_id` call for the page).

Every write is an idempotent upsert that never replaces a newer read with an older one, so several
API processes (and their pollers) can share one PostgreSQL database.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, delete, func, select
from sqlalchemy.orm import Session

from infra.database.models import JobRecord
from infra.orchestration.client import Orchestrator
from infra.orchestration.jobs import Job, JobStatus, JobType

_TABLE = JobRecord.__table__
_COMPARED = ("project_id", "type", "status", "message", "progress", "metrics", "created_at", "started_at",
             "finished_at", "settled")
_CHUNK = 200  # rows per statement (bound parameters stay far below the databases' limits)
_PAGE_ATTEMPTS = 3  # a page re-read after a refresh found rows gone from Prefect


def list_project_jobs(session: Session, orchestrator: Orchestrator, project_id: uuid.UUID | None,
                      job_type: JobType | None = None, status: JobStatus | None = None, limit: int = 20,
                      offset: int = 0) -> list[Job]:
    """Newest first, `limit` from `offset`, as exact as Prefect for every job the index knows.

    `project_id` None lists the jobs of every project (and those of none).

    Only unsettled rows can change. Without a status filter the page's order and membership cannot
    change either, so only the page's unsettled rows are refreshed; with one, every unsettled row of
    the project is refreshed first (a status change moves jobs across pages).
    """
    if status is not None:
        query = select(_TABLE.c.id).where(~_TABLE.c.settled)
        if project_id is not None:
            query = query.where(_TABLE.c.project_id == project_id)
        if job_type is not None:
            query = query.where(_TABLE.c.type == job_type.value)
        refresh(session, orchestrator, list(session.scalars(query)))
        return [job_of(row) for row in _page(session, project_id, job_type, status, limit, offset)]
    rows = _page(session, project_id, job_type, None, limit, offset)
    refreshed: set[uuid.UUID] = set()
    for _ in range(_PAGE_ATTEMPTS):
        stale = [row.id for row in rows if not row.settled and row.id not in refreshed]
        if not stale:
            break
        refresh(session, orchestrator, stale)
        refreshed.update(stale)
        rows = _page(session, project_id, job_type, None, limit, offset)
    return [job_of(row) for row in rows]


def indexed_page(session: Session, project_id: uuid.UUID | None, job_type: JobType | None = None,
                 status: JobStatus | None = None, limit: int = 20, offset: int = 0) -> list[Job]:
    """A page as the index has it, without asking Prefect (for when Prefect does not answer)."""
    return [job_of(row) for row in _page(session, project_id, job_type, status, limit, offset)]


def latest_jobs(session: Session, project_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, Job]:
    """Each project's newest job as the index has it (one query; projects without a job are absent)."""
    if not project_ids:
        return {}
    newest = func.row_number().over(partition_by=_TABLE.c.project_id,
                                    order_by=(_TABLE.c.created_at.desc(), _TABLE.c.id.desc())).label("newest")
    ranked = select(_TABLE, newest).where(_TABLE.c.project_id.in_(list(project_ids))).subquery()
    rows = session.execute(select(ranked).where(ranked.c.newest == 1))
    return {row.project_id: job_of(row) for row in rows}


def refresh(session: Session, orchestrator: Orchestrator, job_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
    """Read the jobs from Prefect (one call per 200) and store them; returns the ids Prefect no longer has."""
    if not job_ids:
        return set()
    read_at = datetime.now(UTC)
    found = orchestrator.jobs_by_id(job_ids)
    record_jobs(session, found.values(), read_at)
    gone = set(job_ids) - set(found)
    forget_jobs(session, gone)
    return gone


def record_jobs(session: Session, jobs: Iterable[Job], read_at: datetime | None = None) -> int:
    """Upsert jobs as read from Prefect at `read_at` (unchanged rows are not written); returns rows written."""
    read_at = read_at or datetime.now(UTC)
    wanted = {job.id: _values(job, read_at) for job in jobs}
    if not wanted:
        return 0
    stored: dict[uuid.UUID, Row[Any]] = {}
    for chunk in _chunks(sorted(wanted)):
        stored.update((row.id, row) for row in session.execute(select(_TABLE).where(_TABLE.c.id.in_(chunk))))
    changed = [values for job_id, values in sorted(wanted.items())
               if job_id not in stored or not _same(stored[job_id], values)]
    for chunk in _chunks(changed):
        _upsert(session, chunk)
    return len(changed)


def forget_jobs(session: Session, job_ids: Collection[uuid.UUID]) -> None:
    """Drop rows of runs Prefect no longer has."""
    for chunk in _chunks(sorted(job_ids)):
        session.execute(delete(JobRecord).where(JobRecord.id.in_(chunk)))


def unsettled_ids(session: Session) -> set[uuid.UUID]:
    return set(session.scalars(select(_TABLE.c.id).where(~_TABLE.c.settled)))  # NOT settled: the partial index


def indexed_ids(session: Session, settled: bool | None = None) -> set[uuid.UUID]:
    query = select(_TABLE.c.id)
    if settled is not None:
        query = query.where(_TABLE.c.settled if settled else ~_TABLE.c.settled)
    return set(session.scalars(query))


def count_indexed(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(_TABLE)) or 0


def job_of(row: Row[Any]) -> Job:
    return Job(id=row.id, type=JobType(row.type) if row.type in JobType._value2member_map_ else None,
               status=JobStatus(row.status), project_id=row.project_id, progress=row.progress,
               metrics=dict(row.metrics or {}), message=row.message, created_at=_utc(row.created_at),
               started_at=_utc(row.started_at), finished_at=_utc(row.finished_at), settled=row.settled)


# -- internals -----------------------------------------------------------------------------------

def _page(session: Session, project_id: uuid.UUID | None, job_type: JobType | None, status: JobStatus | None,
          limit: int, offset: int) -> list[Row[Any]]:
    query = select(_TABLE)
    if project_id is not None:
        query = query.where(_TABLE.c.project_id == project_id)
    if job_type is not None:
        query = query.where(_TABLE.c.type == job_type.value)
    if status is not None:
        query = query.where(_TABLE.c.status == status.value)
    query = query.order_by(_TABLE.c.created_at.desc(), _TABLE.c.id.desc()).limit(limit).offset(offset)
    return list(session.execute(query))


def _values(job: Job, read_at: datetime) -> dict[str, Any]:
    return {"id": job.id, "project_id": job.project_id, "type": job.type.value if job.type else None,
            "status": job.status.value, "message": job.message, "progress": float(job.progress),
            "metrics": job.metrics, "created_at": _utc(job.created_at) or _utc(read_at),
            "started_at": _utc(job.started_at), "finished_at": _utc(job.finished_at), "settled": job.settled,
            "synced_at": _utc(read_at)}


def _utc(value: datetime | None) -> datetime | None:
    """A plain UTC datetime (Prefect hands out pendulum subclasses; SQLite keeps no offset)."""
    if value is None:
        return None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime(value.year, value.month, value.day, value.hour, value.minute, value.second,
                    value.microsecond, tzinfo=UTC)


def _same(row: Row[Any], values: dict[str, Any]) -> bool:
    for name in _COMPARED:
        stored, wanted = getattr(row, name), values[name]
        if isinstance(stored, datetime) or isinstance(wanted, datetime):
            stored, wanted = _utc(stored), _utc(wanted)
        if stored != wanted:
            return False
    return True


def _upsert(session: Session, rows: list[dict[str, Any]]) -> None:
    """INSERT ... ON CONFLICT DO UPDATE, unless the stored row was read from Prefect later."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # any other database: a plain read-then-write (one API process)
        for values in rows:
            stored = session.get(JobRecord, values["id"])
            if stored is None:
                session.add(JobRecord(**values))
            elif _utc(stored.synced_at) <= values["synced_at"]:
                for name, value in values.items():
                    setattr(stored, name, value)
        session.flush()
        return
    statement = insert(_TABLE)
    statement = statement.on_conflict_do_update(
        index_elements=[_TABLE.c.id],
        set_={column.name: statement.excluded[column.name] for column in _TABLE.columns if column.name != "id"},
        where=_TABLE.c.synced_at <= statement.excluded.synced_at)
    session.execute(statement, rows)


def _chunks(items: list[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]
