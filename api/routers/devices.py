"""Devices: cameras a webcam source can open and OpenVINO devices a model can run on."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from api.routing import API_PREFIX
from api.schemas.devices import DevicesOut
from infra.devices import list_cameras, list_compute

router = APIRouter(prefix=API_PREFIX, tags=["devices"])


@router.get("/devices", response_model=DevicesOut)
def list_devices() -> DevicesOut:
    return DevicesOut.model_validate({
        "cameras": [asdict(camera) for camera in list_cameras()],
        "compute": [asdict(device) for device in list_compute()],
    })
