"""``GET /trainable-models``: the anomalib architectures this platform trains, with their parameters."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import SettingsDep, StoreDep
from api.routing import API_PREFIX
from api.schemas.trainable_models import TrainableModel
from api.services.training import trainable_models

router = APIRouter(prefix=API_PREFIX, tags=["trainable_models"])


@router.get("/trainable-models", response_model=list[TrainableModel])
def list_trainable_models(settings: SettingsDep, store: StoreDep) -> list[TrainableModel]:
    """Each architecture's parameters (type, default, options), and whether it can train on this machine
    (imported backbone weights included: POST /backbones/{name}), with hints for choosing: a one-line
    summary, relative speed and accuracy, and whether it is recommended."""
    return trainable_models(settings, store)
