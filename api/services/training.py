"""Starting a training job, for `POST /projects/{id}/train` and the console's training page: checks
everything that can be checked upfront (parameters, the minimum-data rule), then submits the flow.

The model row exists from submission (status "training") and carries the job id; the training
flow turns it "ready" with metrics, or "failed" with the reason.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import HTTPException
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.deps import get_or_404
from api.schemas.trainable_models import TrainableModel
from api.schemas.training import SearchSettings, TrainAccepted, TrainRequest
from api.schemas.training_schedule import TrainingScheduleSettings
from api.services.jobs import submit_or_withdraw
from infra.anomaly.backbones import hub_cache_dir
from infra.anomaly.candidates import AUTO, Candidate, SearchSpec, default_candidates
from infra.anomaly.catalog import ParameterError, availability, catalog, get_architecture, validate_parameters
from infra.anomaly.imported_weights import sync_imported
from infra.database.models import Media, Model, Project, Snapshot, SnapshotItem
from infra.orchestration import JobType, Orchestrator
from infra.settings import Settings
from infra.storage import ObjectStore


@lru_cache(maxsize=4)
def _catalog(cache_dir: Path, imported: tuple[str, ...]) -> tuple[TrainableModel, ...]:
    # Introspection imports anomalib (seconds) and checks weight files: once per set of imported weights.
    return tuple(TrainableModel.model_validate(entry) for entry in catalog(cache_dir))


def clear_catalog() -> None:
    """Forget the described catalog (weights were imported: availability may have changed)."""
    _catalog.cache_clear()


def trainable_models(settings: Settings, store: ObjectStore) -> list[TrainableModel]:
    """Every offered architecture described for this machine (imported backbone weights included)."""
    cache_dir = hub_cache_dir(settings.resolved_data_dir)
    return list(_catalog(cache_dir, sync_imported(store, cache_dir)))


def normal_count(session: Session, project_id: uuid.UUID, snapshot: Snapshot | None) -> int:
    if snapshot is not None:
        query = select(func.count()).where(SnapshotItem.snapshot_id == snapshot.id, SnapshotItem.label == "normal")
    else:
        query = select(func.count()).where(Media.project_id == project_id, Media.label == "normal")
    return session.scalar(query) or 0


def checked_parameters(architecture: str, parameters: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The validated parameters (defaults filled in), or 422 when the model cannot train with them here."""
    cache_dir = hub_cache_dir(settings.resolved_data_dir)
    try:
        checked = validate_parameters(architecture, parameters, cache_dir=cache_dir)
    except ParameterError as error:
        raise HTTPException(status_code=422, detail=str(error)) from error
    available, reason = availability(get_architecture(architecture), cache_dir)
    if not available:
        raise HTTPException(status_code=422, detail=f"{architecture} cannot train here: {reason}")
    return checked


def checked_search(search: SearchSettings, settings: Settings) -> dict[str, Any]:
    """An automatic selection's parameters (candidates resolved, or the default set), or 422."""
    cache_dir = hub_cache_dir(settings.resolved_data_dir)
    if search.candidates is None:
        candidates = default_candidates(cache_dir)
        if not candidates:
            raise HTTPException(status_code=422, detail="no architecture can train here (GET /trainable-models)")
    else:
        candidates = [Candidate(item.architecture, item.parameters) for item in search.candidates]
    resolved = []
    for number, candidate in enumerate(candidates, start=1):
        try:
            parameters = checked_parameters(candidate.architecture, dict(candidate.parameters), settings)
        except HTTPException as error:
            raise HTTPException(status_code=422, detail=f"candidate {number}: {error.detail}") from error
        resolved.append(Candidate(get_architecture(candidate.architecture).name, parameters))
    return SearchSpec(tuple(resolved), search.time_budget_s, search.decision_metric).to_parameters()


def training_parameters(body: TrainRequest | TrainingScheduleSettings, settings: Settings, store: ObjectStore,
                        check_metric: bool = True) -> dict[str, Any]:
    """The model's parameters: an architecture's resolved ones, or an automatic selection's (422 when
    they do not go together). A schedule's decision_metric also applies to one architecture (``check_metric``)."""
    sync_imported(store, hub_cache_dir(settings.resolved_data_dir))  # weights imported through another process
    if body.architecture == AUTO:
        if body.parameters:
            raise HTTPException(status_code=422, detail="architecture 'auto' takes candidates, not parameters")
        return checked_search(body, settings)
    search_only = {"candidates", "time_budget_s"} | ({"decision_metric"} if check_metric else set())
    if body.model_fields_set & search_only:
        raise HTTPException(status_code=422, detail=f"{', '.join(sorted(search_only))} apply to architecture "
                                                    "'auto' only")
    return checked_parameters(body.architecture, body.parameters, settings)


def start_training(session: Session, settings: Settings, store: ObjectStore, orchestrator: Orchestrator,
                   project_id: uuid.UUID, body: TrainRequest, parameters: dict[str, Any] | None = None
                   ) -> TrainAccepted:
    """Create the model (and its snapshot) and submit the training; 404/409/422 before anything is written.
    ``parameters``: what `training_parameters` already returned for this body (a caller that checked them first)."""
    get_or_404(session, Project, project_id)
    if parameters is None:
        parameters = training_parameters(body, settings, store)

    snapshot = None
    if body.snapshot_id is not None:
        snapshot = session.get(Snapshot, body.snapshot_id)
        if snapshot is None or snapshot.project_id != project_id:
            raise HTTPException(status_code=404, detail=f"Snapshot {body.snapshot_id} not found in this project")
        if snapshot.status != "ready":
            raise HTTPException(status_code=409, detail=f"Snapshot {snapshot.id} is {snapshot.status}, not ready")
    normal = normal_count(session, project_id, snapshot)
    if normal < settings.min_normal_images:
        where = f"snapshot {snapshot.id}" if snapshot else "the project"
        raise HTTPException(status_code=422, detail=f"Training needs at least {settings.min_normal_images} normal "
                                                    f"images; {where} has {normal}")

    created: list[Snapshot | Model] = []
    name = body.model_name or f"{body.architecture} {datetime.now(UTC):%Y-%m-%d %H:%M:%S}"
    if snapshot is None:
        snapshot = Snapshot(project_id=project_id, name=f"Training set of {name}"[:255], status="pending")
        session.add(snapshot)
        session.flush()
        created.append(snapshot)
    model = Model(project_id=project_id, name=name, architecture=body.architecture, parameters=parameters,
                  status="training", snapshot_id=snapshot.id)
    session.add(model)
    created.append(model)
    session.commit()

    freeze = snapshot.status == "pending"
    job_id = submit_or_withdraw(session, orchestrator, created[::-1], JobType.TRAINING, project_id,
                                {"model_id": str(model.id), "freeze": freeze}, extra_tags=[f"model:{model.id}"])
    model.job_id = job_id
    if freeze:
        snapshot.job_id = job_id
    session.commit()
    return TrainAccepted(job_id=job_id, model_id=model.id, snapshot_id=snapshot.id)
