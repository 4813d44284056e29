"""Discovery of the cameras and compute devices a pipeline can use on this machine."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)

_VIDEO_NODE = re.compile(r"^video(\d+)$")


@dataclass(frozen=True)
class Camera:
    index: int
    name: str
    path: str
    type: str = "webcam"


@dataclass(frozen=True)
class ComputeDevice:
    name: str
    type: str
    device: str


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def list_cameras(dev_root: Path = Path("/dev"), sys_root: Path = Path("/sys/class/video4linux")) -> list[Camera]:
    """V4L2 capture nodes (``/dev/videoN``), named from sysfs, sorted by index.

    A UVC camera also exposes a metadata node; sysfs gives it a non-zero ``index`` and it is
    skipped, so each physical camera appears once.
    """
    if not dev_root.is_dir():
        return []
    cameras = []
    for node in dev_root.iterdir():
        match = _VIDEO_NODE.match(node.name)
        if not match:
            continue
        info = sys_root / node.name
        if (_read_text(info / "index") or "0") != "0":
            continue
        index = int(match.group(1))
        cameras.append(Camera(index=index, name=_read_text(info / "name") or f"Camera {index}", path=str(node)))
    return sorted(cameras, key=lambda camera: camera.index)


@lru_cache(maxsize=1)
def list_compute() -> tuple[ComputeDevice, ...]:
    """OpenVINO devices (CPU, GPU.N, NPU) with their full names; queried once per process."""
    try:
        import openvino

        core = openvino.Core()
        devices = []
        for device in core.available_devices:
            try:
                name = str(core.get_property(device, "FULL_DEVICE_NAME"))
            except RuntimeError:
                name = device
            devices.append(ComputeDevice(name=name, type=device.split(".")[0].lower(), device=device))
        return tuple(devices)
    except Exception:  # noqa: BLE001 - a broken OpenVINO install must not break the endpoint
        log.exception("OpenVINO device query failed")
        return ()
