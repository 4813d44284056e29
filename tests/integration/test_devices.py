"""GET /devices, and camera discovery on a fake V4L2 tree."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from infra.devices import Camera, list_cameras, list_compute


def test_devices_endpoint(client):
    response = client.get("/api/devices")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"cameras", "compute"}
    # This machine has no camera; the list is whatever the scan of /dev and sysfs finds.
    assert body["cameras"] == [asdict(camera) for camera in list_cameras()]
    cpu = [device for device in body["compute"] if device["type"] == "cpu"]
    assert len(cpu) == 1 and cpu[0]["device"] == "CPU" and cpu[0]["name"]
    assert all(set(device) == {"name", "type", "device"} for device in body["compute"])


def test_compute_query_is_cached():
    assert list_compute() is list_compute()


def _fake_node(dev: Path, sys: Path, number: int, name: str | None, index: str | None = "0") -> None:
    (dev / f"video{number}").touch()
    node = sys / f"video{number}"
    node.mkdir(parents=True)
    if name is not None:
        (node / "name").write_text(name + "\n")
    if index is not None:
        (node / "index").write_text(index + "\n")


def test_camera_scan_on_a_fake_tree(tmp_path):
    # A physical camera cannot exist on this machine: this temporary /dev + sysfs tree stands in for
    # one, laid out as the Linux UVC driver lays it out.
    dev, sys = tmp_path / "dev", tmp_path / "sys"
    dev.mkdir()
    _fake_node(dev, sys, 0, "Integrated Camera: Integrated C")
    _fake_node(dev, sys, 1, "Integrated Camera: Integrated C", index="1")  # the same camera's metadata node
    _fake_node(dev, sys, 10, "USB Camera")
    _fake_node(dev, sys, 2, None, index=None)  # no sysfs details
    (dev / "video-not-a-node").touch()
    (dev / "null").touch()

    assert list_cameras(dev, sys) == [
        Camera(index=0, name="Integrated Camera: Integrated C", path=str(dev / "video0")),
        Camera(index=2, name="Camera 2", path=str(dev / "video2")),
        Camera(index=10, name="USB Camera", path=str(dev / "video10")),
    ]


def test_camera_scan_without_dev_folder(tmp_path):
    assert list_cameras(tmp_path / "missing", tmp_path / "missing-sys") == []
