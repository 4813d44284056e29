"""A project's training schedule: a cron schedule of the `retraining` deployment in Prefect.

Nothing is stored here: the schedule in Prefect is the only copy (pausing it in the Prefect UI
shows `"active": false`), and its parameters are the retraining settings. The rules live in
api/services/training_schedules.py, which the console's schedule page calls too.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException, Response

from api.deps import SessionDep, SettingsDep, StoreDep, get_or_404
from api.routing import API_PREFIX
from api.schemas.jobs import JobAccepted
from api.schemas.training_schedule import TrainingScheduleIn, TrainingScheduleOut
from api.services.jobs import OrchestratorDep, orchestration_errors
from api.services.training_schedules import forget, run_now, schedule_or_404, schedule_out, set_schedule
from infra.database.models import Project
from infra.orchestration.schedules import delete_schedule

router = APIRouter(prefix=API_PREFIX, tags=["training-schedule"])

PATH = "/projects/{project_id}/training-schedule"


@router.put(PATH, response_model=TrainingScheduleOut)
def set_training_schedule(project_id: uuid.UUID, body: TrainingScheduleIn, session: SessionDep,
                          settings: SettingsDep, store: StoreDep, orchestrator: OrchestratorDep
                          ) -> TrainingScheduleOut:
    """Create or replace the project's schedule."""
    return schedule_out(set_schedule(session, settings, store, orchestrator, project_id, body))


@router.get(PATH, response_model=TrainingScheduleOut)
def get_training_schedule(project_id: uuid.UUID, session: SessionDep, store: StoreDep,
                          orchestrator: OrchestratorDep) -> TrainingScheduleOut:
    get_or_404(session, Project, project_id)
    return schedule_out(schedule_or_404(orchestrator, store, project_id))


@router.delete(PATH, status_code=204)
def delete_training_schedule(project_id: uuid.UUID, session: SessionDep, store: StoreDep,
                             orchestrator: OrchestratorDep) -> Response:
    """Remove the schedule and the runs it had scheduled (a run already started goes on)."""
    get_or_404(session, Project, project_id)
    with orchestration_errors():
        deleted = delete_schedule(orchestrator, store, project_id)
    forget(project_id)
    if not deleted:
        raise HTTPException(status_code=404, detail=f"Project {project_id} has no training schedule")
    return Response(status_code=204)


@router.post(f"{PATH}/run", status_code=202, response_model=JobAccepted)
def run_training_schedule(project_id: uuid.UUID, session: SessionDep, store: StoreDep,
                          orchestrator: OrchestratorDep) -> JobAccepted:
    """Run the schedule's retraining now (also while the schedule is paused)."""
    return JobAccepted(job_id=run_now(session, store, orchestrator, project_id))
