"""A project's training schedule (a cron schedule of the `retraining` deployment in Prefect): set it, read it,
run it now. Shared by the REST routes and the console's schedule page.

`quick_schedule` is for pages: it waits for Prefect only briefly and otherwise answers from the last
schedule this process read or wrote, so a slow or stopped Prefect never holds a page up.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from fastapi import HTTPException
from sqlalchemy.orm import Session

from api.deps import get_or_404
from api.schemas.training_schedule import TrainingScheduleIn, TrainingScheduleOut, TrainingScheduleSettings
from api.services.jobs import orchestration_errors, submit_job
from api.services.training import training_parameters
from infra.anomaly.candidates import AUTO
from infra.database.models import Project
from infra.orchestration import JobType, OrchestrationUnavailable, Orchestrator
from infra.orchestration.schedules import (
    InvalidSchedule,
    ProjectSchedule,
    get_schedule,
    put_schedule,
)
from infra.settings import Settings
from infra.storage import ObjectStore

# How long a page waits for Prefect's answer before it shows the last one it knows, and how old a known
# schedule may be to be shown without asking again (a save in this process updates it at once).
PAGE_WAIT_S = 0.1
FRESH_S = 2.0


def schedule_out(schedule: ProjectSchedule) -> TrainingScheduleOut:
    return TrainingScheduleOut.model_validate({
        **schedule.parameters, "project_id": schedule.project_id, "cron": schedule.cron,
        "timezone": schedule.timezone, "active": schedule.active, "next_runs": schedule.next_runs()})


def schedule_or_404(orchestrator: Orchestrator, store: ObjectStore, project_id: uuid.UUID) -> ProjectSchedule:
    with orchestration_errors():
        schedule = get_schedule(orchestrator, store, project_id)
    if schedule is None:
        raise HTTPException(status_code=404, detail=f"Project {project_id} has no training schedule")
    _remember(project_id, schedule)
    return schedule


def set_schedule(session: Session, settings: Settings, store: ObjectStore, orchestrator: Orchestrator,
                 project_id: uuid.UUID, body: TrainingScheduleIn) -> ProjectSchedule:
    """Create or replace the project's schedule: 422 for settings that cannot train here or a bad cron/timezone,
    503 when Prefect is unreachable."""
    get_or_404(session, Project, project_id)
    if body.architecture == AUTO and body.candidates is None:
        # The default set is resolved when a run starts, so it follows what is installed then
        # (backbone weights imported later, say); given candidates are checked and resolved now.
        checked: dict = {"parameters": {}}
        if body.parameters:
            raise HTTPException(status_code=422, detail="architecture 'auto' takes candidates, not parameters")
    elif body.architecture == AUTO:
        checked = {"parameters": {}, "candidates": training_parameters(body, settings, store)["candidates"]}
    else:
        checked = {"parameters": training_parameters(body, settings, store, check_metric=False)}
    run_settings = TrainingScheduleSettings.model_validate(
        {**body.model_dump(include=set(TrainingScheduleSettings.model_fields)), **checked})
    try:
        with orchestration_errors():
            schedule = put_schedule(orchestrator, store, project_id, body.cron, body.timezone,
                                    run_settings.model_dump(mode="json"), body.active)
    except InvalidSchedule as error:
        raise HTTPException(status_code=422, detail=str(error)) from error
    _remember(project_id, schedule)
    return schedule


def run_now(session: Session, store: ObjectStore, orchestrator: Orchestrator, project_id: uuid.UUID) -> uuid.UUID:
    """Submit the schedule's retraining now (also while the schedule is paused); the job id."""
    get_or_404(session, Project, project_id)
    schedule = schedule_or_404(orchestrator, store, project_id)
    with orchestration_errors():
        return submit_job(session, orchestrator, JobType.RETRAINING, project_id, schedule.parameters)


@dataclass(frozen=True)
class ScheduleRead:
    schedule: ProjectSchedule | None
    # Why the schedule shown may not be Prefect's current one (slow or unreachable), else None.
    problem: str | None = None


# project -> (monotonic time of the last answer, the schedule known then, why it may be out of date or None)
_known: dict[uuid.UUID, tuple[float, ProjectSchedule | None, str | None]] = {}
_known_lock = threading.Lock()
_pending: dict[uuid.UUID, Future[ProjectSchedule | None]] = {}
_readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="schedule-read")
SLOW = "Prefect is slow to answer: showing the schedule as last read"


def _remember(project_id: uuid.UUID, schedule: ProjectSchedule | None, problem: str | None = None) -> None:
    with _known_lock:
        _known[project_id] = (time.monotonic(), schedule, problem)


def forget(project_id: uuid.UUID) -> None:
    """After a delete: the page must not show the removed schedule as the last one known."""
    _remember(project_id, None)


def _read(orchestrator: Orchestrator, store: ObjectStore, project_id: uuid.UUID) -> ProjectSchedule | None:
    try:
        schedule = get_schedule(orchestrator, store, project_id)
    except OrchestrationUnavailable as error:
        # Pages in the next FRESH_S say so at once instead of waiting for Prefect again.
        with _known_lock:
            previous = _known.get(project_id, (0.0, None, None))[1]
        _remember(project_id, previous, f"Prefect is unreachable ({error}): showing the schedule as last read")
        raise
    _remember(project_id, schedule)
    return schedule


def quick_schedule(orchestrator: Orchestrator, store: ObjectStore, project_id: uuid.UUID,
                   wait_s: float = PAGE_WAIT_S) -> ScheduleRead:
    """The schedule as Prefect has it if it answers within `wait_s`; else the last one known, saying so.

    What Prefect answered (or that it did not) in the last FRESH_S is shown without asking again. One read
    per project runs at a time: a page that finds one under way does not wait for it, and a slow read goes
    on in the background and updates what is known.
    """
    with _known_lock:
        read_at, known, problem = _known.get(project_id, (float("-inf"), None, None))
        if time.monotonic() - read_at < FRESH_S:
            return ScheduleRead(known, problem)
        future = _pending.get(project_id)
        if future is not None and not future.done():
            return ScheduleRead(known, SLOW)
        future = _readers.submit(_read, orchestrator, store, project_id)
        _pending[project_id] = future
    try:
        return ScheduleRead(future.result(timeout=wait_s))
    except FutureTimeout:
        return ScheduleRead(known, SLOW)
    except OrchestrationUnavailable as error:
        return ScheduleRead(known, f"Prefect is unreachable ({error}): showing the schedule as last read")
