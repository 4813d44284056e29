"""Shared by the routers that read or talk to active pipelines: state reconciliation and the control proxy."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from fastapi import HTTPException
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from api.control_proxy import ControlClient, ControlError, ControlUnreachable
from api.deps import get_or_404
from infra.active_pipelines import ACTIVE, settle
from infra.database.models import ActivePipeline, Pipeline
from infra.orchestration import OrchestrationUnavailable, Orchestrator

log = logging.getLogger(__name__)


def refresh(session: Session, orchestrator: Orchestrator, rows: Sequence[ActivePipeline]) -> bool:
    """Settle rows whose flow run ended without recording it; False when Prefect could not be asked.

    Reads then serve the last known state: the rows stay right once Prefect answers again.
    """
    waiting = [row for row in rows if row.status in ACTIVE and row.flow_run_id is not None]
    if not waiting:
        return True
    try:
        jobs = orchestrator.jobs_by_id(row.flow_run_id for row in waiting)
    except OrchestrationUnavailable as error:
        log.warning("cannot reconcile active pipelines with Prefect: %s", error)
        return False
    settle(session, waiting, jobs)
    return True


def ensure_idle(session: Session, orchestrator: Orchestrator, pipelines: ColumnElement[bool], subject: str,
                action: str) -> None:
    """409 while a pipeline matching `pipelines` (a condition on Pipeline) still has a live run.

    Rows are reconciled with Prefect first, so a run that died does not block.
    """
    rows = list(session.scalars(select(ActivePipeline).join(Pipeline, ActivePipeline.pipeline_id == Pipeline.id)
                                .where(pipelines, ActivePipeline.status.in_(ACTIVE))))
    refresh(session, orchestrator, rows)
    running = [row for row in rows if row.status in ACTIVE]
    if running:
        raise HTTPException(status_code=409, detail=f"{subject} is active (active pipeline {running[0].id} of "
                                                    f"pipeline {running[0].pipeline_id} is {running[0].status}); "
                                                    f"stop it before {action}")


def running_row(session: Session, active_id: uuid.UUID) -> ActivePipeline:
    """The active pipeline, which must be running with a control endpoint (404, 409 otherwise).

    The row is trusted as written by the flow; if the flow died, its endpoint does not answer
    and :func:`control_call` settles the row then.
    """
    row = get_or_404(session, ActivePipeline, active_id)
    if row.status != "running" or not row.control_url or not row.control_token:
        raise HTTPException(status_code=409, detail=f"active pipeline {active_id} is {row.status}, not running")
    return row


@contextmanager
def control_call(session: Session, orchestrator: Orchestrator, row: ActivePipeline) -> Iterator[ControlClient]:
    """A client for the row's control endpoint; its errors become HTTP errors.

    An endpoint that does not answer usually means the pipeline just ended: the row is settled
    from Prefect and the client gets 409 when it has, 503 otherwise.
    """
    try:
        yield ControlClient(row.control_url or "", row.control_token or "")
    except ControlError as error:
        raise HTTPException(status_code=error.status_code, detail=error.detail) from error
    except ControlUnreachable as error:
        refresh(session, orchestrator, [row])
        if row.status != "running":
            raise HTTPException(status_code=409,
                                detail=f"active pipeline {row.id} is {row.status}, not running") from error
        raise HTTPException(status_code=503, detail=str(error)) from error
