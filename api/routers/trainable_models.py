"""``GET /trainable-models``: the anomalib architectures this platform trains, with their parameters."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter

from api.deps import SettingsDep
from api.schemas.trainable_models import TrainableModel
from infra.anomaly.backbones import hub_cache_dir
from infra.anomaly.catalog import catalog

router = APIRouter(tags=["trainable_models"])


@lru_cache(maxsize=4)
def _catalog(cache_dir: Path) -> tuple[TrainableModel, ...]:
    # Introspection imports anomalib (seconds) and checks weight files: once per process is enough.
    return tuple(TrainableModel.model_validate(entry) for entry in catalog(cache_dir))


@router.get("/trainable-models", response_model=list[TrainableModel])
def list_trainable_models(settings: SettingsDep) -> list[TrainableModel]:
    """Each architecture's parameters (type, default, options), and whether it can train on this machine."""
    return list(_catalog(hub_cache_dir(settings.resolved_data_dir)))
