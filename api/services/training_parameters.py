"""Checking what a training (or a training schedule) asks for: its architecture's parameters, or an
automatic selection's candidates, against what can train on this installation (422 otherwise)."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException

from api.schemas.training import SearchSettings, TrainRequest
from api.schemas.training_schedule import TrainingScheduleSettings
from infra.anomaly.backbones import hub_cache_dir
from infra.anomaly.candidates import AUTO, Candidate, SearchSpec, default_candidates
from infra.anomaly.catalog import ParameterError, availability, get_architecture, validate_parameters
from infra.anomaly.imported_weights import sync_imported
from infra.settings import Settings
from infra.storage import ObjectStore


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
