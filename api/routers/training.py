"""Start a training job (the checks and the submission live in api/services/training.py)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from api.deps import SessionDep, SettingsDep, StoreDep
from api.routing import API_PREFIX
from api.schemas.training import TrainAccepted, TrainRequest
from api.services import training
from api.services.jobs import OrchestratorDep

router = APIRouter(prefix=API_PREFIX, tags=["training"])


@router.post("/projects/{project_id}/train", status_code=202, response_model=TrainAccepted)
def start_training(project_id: uuid.UUID, body: TrainRequest, session: SessionDep, settings: SettingsDep,
                   store: StoreDep, orchestrator: OrchestratorDep) -> TrainAccepted:
    return training.start_training(session, settings, store, orchestrator, project_id, body)
