"""A project's training schedule: a cron schedule of the `retraining` deployment in Prefect.

Nothing is stored here: the schedule in Prefect is the only copy (pausing it in the Prefect UI
shows `"active": false`), and its parameters are the retraining settings.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException, Response

from api.deps import SessionDep, SettingsDep, StoreDep, get_or_404
from api.schemas.jobs import JobAccepted
from api.schemas.training_schedule import TrainingScheduleIn, TrainingScheduleOut, TrainingScheduleSettings
from api.services.jobs import OrchestratorDep, orchestration_errors, submit_job
from api.services.training import training_parameters
from infra.anomaly.candidates import AUTO
from infra.database.models import Project
from infra.orchestration import JobType, Orchestrator
from infra.orchestration.schedules import (
    InvalidSchedule,
    ProjectSchedule,
    delete_schedule,
    get_schedule,
    put_schedule,
)
from infra.storage import ObjectStore

router = APIRouter(tags=["training-schedule"])

PATH = "/projects/{project_id}/training-schedule"


def _out(schedule: ProjectSchedule) -> TrainingScheduleOut:
    return TrainingScheduleOut.model_validate({
        **schedule.parameters, "project_id": schedule.project_id, "cron": schedule.cron,
        "timezone": schedule.timezone, "active": schedule.active, "next_runs": schedule.next_runs()})


def _schedule_or_404(orchestrator: Orchestrator, store: ObjectStore, project_id: uuid.UUID) -> ProjectSchedule:
    with orchestration_errors():
        schedule = get_schedule(orchestrator, store, project_id)
    if schedule is None:
        raise HTTPException(status_code=404, detail=f"Project {project_id} has no training schedule")
    return schedule


@router.put(PATH, response_model=TrainingScheduleOut)
def set_training_schedule(project_id: uuid.UUID, body: TrainingScheduleIn, session: SessionDep,
                          settings: SettingsDep, store: StoreDep, orchestrator: OrchestratorDep
                          ) -> TrainingScheduleOut:
    """Create or replace the project's schedule."""
    get_or_404(session, Project, project_id)
    if body.architecture == AUTO and body.candidates is None:
        # The default set is resolved when a run starts, so it follows what is installed then
        # (backbone weights imported later, say); given candidates are checked and resolved now.
        checked = {"parameters": {}}
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
    return _out(schedule)


@router.get(PATH, response_model=TrainingScheduleOut)
def get_training_schedule(project_id: uuid.UUID, session: SessionDep, store: StoreDep,
                          orchestrator: OrchestratorDep) -> TrainingScheduleOut:
    get_or_404(session, Project, project_id)
    return _out(_schedule_or_404(orchestrator, store, project_id))


@router.delete(PATH, status_code=204)
def delete_training_schedule(project_id: uuid.UUID, session: SessionDep, store: StoreDep,
                             orchestrator: OrchestratorDep) -> Response:
    """Remove the schedule and the runs it had scheduled (a run already started goes on)."""
    get_or_404(session, Project, project_id)
    with orchestration_errors():
        deleted = delete_schedule(orchestrator, store, project_id)
    if not deleted:
        raise HTTPException(status_code=404, detail=f"Project {project_id} has no training schedule")
    return Response(status_code=204)


@router.post(f"{PATH}/run", status_code=202, response_model=JobAccepted)
def run_training_schedule(project_id: uuid.UUID, session: SessionDep, store: StoreDep,
                          orchestrator: OrchestratorDep) -> JobAccepted:
    """Run the schedule's retraining now (also while the schedule is paused)."""
    get_or_404(session, Project, project_id)
    schedule = _schedule_or_404(orchestrator, store, project_id)
    with orchestration_errors():
        job_id = submit_job(session, orchestrator, JobType.RETRAINING, project_id, schedule.parameters)
    return JobAccepted(job_id=job_id)
