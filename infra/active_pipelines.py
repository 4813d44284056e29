"""Lifecycle of an active pipeline row, shared by the inference flow (which drives it) and the API.

    starting ──▶ running ──▶ stopping ──▶ stopped
        └───────────┴────────────┴──────▶ failed

The flow writes every transition it lives to see. When its process never gets the chance
(killed, crashed, cancelled before it started), the flow run's final state in Prefect says how
it ended, and the API settles the row from that (:func:`settled_state`). Rows never leave a
final state: every write here is conditional on the row still being active, so whichever side
records the end first wins and the other changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from infra.database.models import LIVE_STATUSES, ActivePipeline, utcnow
from infra.orchestration.jobs import Job, JobStatus

ACTIVE = LIVE_STATUSES
FINAL = ("stopped", "failed")
# The flow writes a heartbeat every second; this much silence means it is not working right now.
HEARTBEAT_STALE_S = 10.0
MAX_MESSAGE_CHARS = 2000


def transition(session: Session, active_id: uuid.UUID, status: str, *, message: str | None = None,
               only_from: Iterable[str] = ACTIVE, **values: Any) -> bool:
    """Move the row to `status` if it is still in one of `only_from`; True when it moved."""
    changes: dict[str, Any] = {"status": status, "message": message[:MAX_MESSAGE_CHARS] if message else None,
                               **values}
    if status in FINAL:
        changes.setdefault("stopped_at", utcnow())
    result = session.execute(update(ActivePipeline)
                             .where(ActivePipeline.id == active_id, ActivePipeline.status.in_(tuple(only_from)))
                             .values(**changes))
    return bool(result.rowcount)


def heartbeat_age(row: ActivePipeline, now: datetime | None = None) -> float | None:
    """Seconds since the flow's last heartbeat (None before the first one)."""
    if row.heartbeat_at is None:
        return None
    beat = row.heartbeat_at
    if beat.tzinfo is None:  # SQLite hands timezone-aware values back naive (in UTC)
        beat = beat.replace(tzinfo=(now or utcnow()).tzinfo)
    return max(0.0, ((now or utcnow()) - beat).total_seconds())


def settled_state(row: ActivePipeline, job: Job | None, now: datetime | None = None) -> tuple[str, str | None] | None:
    """The final (status, message) an active row must take given its flow run, or None while it may live.

    `job` is the row's flow run as read from Prefect; None means Prefect does not know the run.
    """
    if row.status in FINAL or row.flow_run_id is None:
        return None
    if job is None:
        return "failed", "its flow run no longer exists in Prefect"
    if job.status is JobStatus.CANCELLED:
        return "stopped", row.message
    if job.status is JobStatus.COMPLETED:
        return "stopped", row.message
    if job.status is JobStatus.FAILED:
        return "failed", job.message or "the flow run failed"
    age = heartbeat_age(row, now)
    if age is not None and age > HEARTBEAT_STALE_S and job.status is not JobStatus.RUNNING:
        return "failed", f"no heartbeat for {age:.0f} s and its flow run is {job.status.value}"
    return None


def settle(session: Session, rows: Iterable[ActivePipeline], jobs: dict[uuid.UUID, Job],
           now: datetime | None = None) -> int:
    """Settle each still-active row whose flow run has ended; returns how many changed."""
    changed = 0
    for row in rows:
        if row.flow_run_id is None:
            continue
        settled = settled_state(row, jobs.get(row.flow_run_id), now)
        if settled is not None and transition(session, row.id, settled[0], message=settled[1]):
            changed += 1
            session.refresh(row)
    return changed
