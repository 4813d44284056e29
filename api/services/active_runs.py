"""Shared by the routers and console pages that start, stop, read or talk to active pipelines: starting and
stopping a line, state reconciliation and the control proxy."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

from fastapi import HTTPException
from sqlalchemy import ColumnElement, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.control_proxy import ControlClient, ControlError, ControlUnreachable
from api.deps import get_or_404
from api.services.jobs import submit_or_withdraw
from infra.active_pipelines import ACTIVE, FINAL, HEARTBEAT_STALE_S, heartbeat_age, settle, transition
from infra.database.models import ActivePipeline, Model, Pipeline
from infra.orchestration import JobFinished, JobNotFound, JobType, OrchestrationUnavailable, Orchestrator

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


def silence_note(row: ActivePipeline) -> str | None:
    """"no heartbeat for N s" for a running row whose flow stopped reporting (None while it reports)."""
    age = heartbeat_age(row)
    if row.status == "running" and age is not None and age > HEARTBEAT_STALE_S:
        return f"no heartbeat for {age:.0f} s"
    return None


def settle_silent(session: Session, orchestrator: Orchestrator, rows: Iterable[ActivePipeline]) -> None:
    """Ask Prefect about the live rows whose heartbeat stopped, and settle those whose run has ended.

    For pages that otherwise read the database only: a line whose flow died would show running there. Rows
    that still report cost nothing; when Prefect cannot be asked they keep their last known state.
    """
    silent = [row for row in rows if silence_note(row) is not None]
    if silent and refresh(session, orchestrator, silent):
        session.commit()


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
    if row.status != "running":
        raise HTTPException(status_code=409, detail=f"active pipeline {active_id} is {row.status}, not running")
    if not row.control_url or not row.control_token:
        raise HTTPException(status_code=409, detail=f"active pipeline {active_id} is running but has not opened "
                                                    "its control endpoint yet; try again in a moment")
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


def start_line(session: Session, orchestrator: Orchestrator, pipeline_id: uuid.UUID) -> ActivePipeline:
    """Submit a run of the `inference` deployment for the pipeline (committed): 404 unknown, 409 while it runs
    or without a ready model, 503 when Prefect refuses (then nothing is left behind)."""
    pipeline = get_or_404(session, Pipeline, pipeline_id)
    ensure_idle(session, orchestrator, Pipeline.id == pipeline.id, f"pipeline {pipeline.id}", "starting it again")
    if pipeline.model_id is None:
        raise HTTPException(status_code=409, detail=f"pipeline {pipeline.id} follows the champion and project "
                                                    f"{pipeline.project_id} has none yet: promote a model first")
    model = session.get(Model, pipeline.model_id)
    if model is None or model.status != "ready":
        status = model.status if model is not None else "missing"
        raise HTTPException(status_code=409, detail=f"model {pipeline.model_id} is {status}, not ready")
    row = ActivePipeline(pipeline_id=pipeline.id, status="starting")
    session.add(row)
    try:
        session.commit()
    except IntegrityError as error:  # another start of this pipeline won the race
        session.rollback()
        raise HTTPException(status_code=409, detail=f"pipeline {pipeline.id} is already being started") from error
    row.flow_run_id = submit_or_withdraw(session, orchestrator, [row], JobType.INFERENCE, pipeline.project_id,
                                         {"active_pipeline_id": str(row.id)})
    session.commit()
    return row


def stop_line(session: Session, orchestrator: Orchestrator, active_id: uuid.UUID) -> None:
    """Cancel the run (409 when it already ended, 503 when Prefect is unreachable: then it keeps its state)."""
    row = get_or_404(session, ActivePipeline, active_id)
    refresh(session, orchestrator, [row])
    if row.status in FINAL:
        raise HTTPException(status_code=409, detail=f"active pipeline {active_id} is already {row.status}")
    previous = row.status
    # Recorded before the cancel so that the flow, on its SIGTERM, knows this was a stop and not a crash.
    transition(session, row.id, "stopping", only_from=(previous,))
    session.commit()
    if row.flow_run_id is None:
        transition(session, row.id, "stopped")
        return
    try:
        orchestrator.cancel(row.flow_run_id)
    except (JobFinished, JobNotFound):
        refresh(session, orchestrator, [row])  # it ended meanwhile: settle from its final state
    except OrchestrationUnavailable as error:
        transition(session, row.id, previous, only_from=("stopping",))
        session.commit()
        raise HTTPException(status_code=503, detail=f"Job orchestration unavailable: {error}") from error


def latest_runs(session: Session, pipeline_ids: list[uuid.UUID]) -> dict[uuid.UUID, ActivePipeline]:
    """Each pipeline's newest active-pipeline row (its current or last run), without asking Prefect."""
    if not pipeline_ids:
        return {}
    rows = session.scalars(select(ActivePipeline).where(ActivePipeline.pipeline_id.in_(pipeline_ids))
                           .order_by(ActivePipeline.created_at.desc(), ActivePipeline.id.desc()))
    latest: dict[uuid.UUID, ActivePipeline] = {}
    for row in rows:
        latest.setdefault(row.pipeline_id, row)
    return latest
