from __future__ import annotations

from typing import Literal

from api.schemas.common import ApiModel


class CameraOut(ApiModel):
    index: int
    name: str
    type: Literal["webcam"] = "webcam"
    path: str


class ComputeOut(ApiModel):
    name: str
    type: str
    # The OpenVINO device name to run a model on ("CPU", "GPU.0", ...).
    device: str


class DevicesOut(ApiModel):
    cameras: list[CameraOut]
    compute: list[ComputeOut]
