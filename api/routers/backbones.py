"""Backbone weights for air-gapped plants: what is installed, and importing a weights file.

The check (format, keys and shapes against the timm backbone, finite values) runs in a subprocess
(``infra/anomaly/weights_check.py``): torch's unpickler and the tensors stay out of the API
process, whose heap is frozen at start for short collector pauses (``api/heap.py``).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, HTTPException, UploadFile

from api.deps import SettingsDep, StoreDep
from api.routing import API_PREFIX
from api.schemas.backbones import BackboneOut, ImportedWeights
from api.schemas.common import ErrorResponse
from api.services.training import clear_catalog
from infra.anomaly import backbones
from infra.anomaly.imported_weights import (
    ImportRefused,
    check_name,
    import_weights,
    imported,
    offered_backbones,
    sync_imported,
)
from infra.anomaly.weights_check import SUFFIXES
from infra.storage import ObjectStore

router = APIRouter(prefix=API_PREFIX, tags=["backbones"])


def _describe(store: ObjectStore, cache_dir: Path) -> list[BackboneOut]:
    sync_imported(store, cache_dir)
    manifests = imported(store)
    out = []
    for name, architectures in offered_backbones().items():
        if name in manifests:
            source = "imported"
        elif backbones.shipped_weights_path(name) is not None:
            source = "shipped"
        elif backbones.cached_weights(name, cache_dir) is not None:
            source = "cache"
        else:
            source = None
        manifest = manifests.get(name)
        out.append(BackboneOut(name=name, installed=source is not None, source=source, architectures=architectures,
                               imported=ImportedWeights.model_validate(manifest) if manifest else None))
    return out


@router.get("/backbones", response_model=list[BackboneOut])
def list_backbones(settings: SettingsDep, store: StoreDep) -> list[BackboneOut]:
    """Every backbone the offered architectures use, and whether its weights are installed here."""
    return _describe(store, backbones.hub_cache_dir(settings.resolved_data_dir))


@router.post("/backbones/{name}", status_code=201, response_model=BackboneOut,
             responses={404: {"model": ErrorResponse, "description": "No offered architecture uses this backbone"},
                        422: {"model": ErrorResponse,
                              "description": "Not a weights file, or one that does not fit the backbone"}})
def import_backbone(name: str, settings: SettingsDep, store: StoreDep,
                    file: Annotated[UploadFile, File(description="A timm or torchvision state dict: "
                                                                 ".safetensors, .pth, .pt or .bin")]) -> BackboneOut:
    """Import ImageNet weights for a backbone: checked, converted to timm's safetensors, stored; the
    architectures it unlocks show as available in GET /trainable-models."""
    try:
        check_name(name)
    except ImportRefused as error:
        raise HTTPException(status_code=404, detail=str(error)) from error
    suffix = Path(file.filename or "").suffix.lower()
    if suffix not in SUFFIXES:
        raise HTTPException(status_code=422, detail=f"unsupported file type {suffix or '(none)'!r}; expected one of "
                                                    f"{', '.join(SUFFIXES)}")
    cache_dir = backbones.hub_cache_dir(settings.resolved_data_dir)
    work = settings.resolved_data_dir / "work"  # a file of hundreds of MB: the data disk, not a RAM-backed /tmp
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="weights-upload-", dir=work) as tmp:
        local = Path(tmp) / f"upload{suffix}"  # the client's name never becomes a path
        with local.open("wb") as handle:
            shutil.copyfileobj(file.file, handle, 1 << 20)
        try:
            import_weights(store, cache_dir, name, local, file.filename or local.name, work)
        except ImportRefused as error:
            raise HTTPException(status_code=422, detail=str(error)) from error
    clear_catalog()
    return next(backbone for backbone in _describe(store, cache_dir) if backbone.name == name)
