"""``GET /trainable-models``: the anomalib architectures this platform trains, with their parameters."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter

from api.deps import SettingsDep, StoreDep
from api.schemas.trainable_models import TrainableModel
from infra.anomaly.backbones import hub_cache_dir
from infra.anomaly.catalog import catalog
from infra.anomaly.imported_weights import sync_imported

router = APIRouter(tags=["trainable_models"])


@lru_cache(maxsize=4)
def _catalog(cache_dir: Path, imported: tuple[str, ...]) -> tuple[TrainableModel, ...]:
    # Introspection imports anomalib (seconds) and checks weight files: once per set of imported weights.
    return tuple(TrainableModel.model_validate(entry) for entry in catalog(cache_dir))


def clear_catalog() -> None:
    """Forget the described catalog (weights were imported: availability may have changed)."""
    _catalog.cache_clear()


@router.get("/trainable-models", response_model=list[TrainableModel])
def list_trainable_models(settings: SettingsDep, store: StoreDep) -> list[TrainableModel]:
    """Each architecture's parameters (type, default, options), and whether it can train on this machine
    (imported backbone weights included: POST /backbones/{name})."""
    cache_dir = hub_cache_dir(settings.resolved_data_dir)
    return list(_catalog(cache_dir, sync_imported(store, cache_dir)))
