"""Frame sources against real files and a real MJPEG-over-HTTP camera on loopback.

The webcam is the one source tested with a fake: there is no camera on this machine, so
``cv2.VideoCapture`` is replaced by a scripted capture to exercise the live-source logic
(latest frame only, stale frames dropped, reconnect with backoff).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from infra.configs import ImagesFolderConfig, IpCameraConfig, VideoFileConfig, WebcamConfig
from pipelines.sources import SourceEnded, SourceError, build_source, check_source
from pipelines.sources.images_folder import ImagesFolderSource
from pipelines.sources.ip_camera import IpCameraSource, url_with_credentials
from pipelines.sources.video_file import VideoFileSource
from pipelines.sources.webcam import WebcamSource
from tests.integration.pipeline_helpers import MjpegCamera, class_images

pytestmark = pytest.mark.timeout(60)


def read_n(source, count: int, timeout: float = 5.0) -> list:
    frames = []
    deadline = time.monotonic() + timeout
    while len(frames) < count and time.monotonic() < deadline:
        try:
            frame = source.read(timeout=0.5)
        except SourceEnded:
            break
        if frame is not None:
            frames.append(frame)
    return frames


def wait_state(source, state: str, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = source.status()
        if status["state"] == state:
            return status
        time.sleep(0.05)
    raise AssertionError(f"source never reached {state!r}: {source.status()}")


# ------------------------------------------------------------------ video file


def test_video_file_check_reports_size_and_fps(part_video: Path) -> None:
    result = check_source("video_file", {"path": str(part_video)})
    assert result.to_dict() == {"reachable": True, "width": 320, "height": 240, "fps": 25.0, "error": None}


def test_video_file_loops_or_ends(part_video: Path) -> None:
    looping = VideoFileSource(VideoFileConfig(path=str(part_video), loop=True))
    looping.open()
    frames = read_n(looping, 30)
    looping.close()
    assert len(frames) == 30
    assert np.array_equal(frames[0].image, frames[12].image)  # frame 12 is frame 0 again
    assert looping.status()["loops"] == 2

    once = VideoFileSource(VideoFileConfig(path=str(part_video), loop=False))
    once.open()
    assert len(read_n(once, 12)) == 12
    with pytest.raises(SourceEnded):
        once.read(timeout=0.5)
    once.close()
    assert once.status()["state"] == "ended"


def test_video_file_missing_or_not_a_video_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="video file not found: .*nope.avi"):
        build_source("video_file", {"path": str(tmp_path / "nope.avi")}).open()
    text = tmp_path / "notes.avi"
    text.write_text("not a video")
    with pytest.raises(SourceError, match="cannot decode"):
        build_source("video_file", {"path": str(text)}).open()
    assert check_source("video_file", {"path": str(tmp_path / "nope.avi")}).reachable is False


# ------------------------------------------------------------------ images folder


@pytest.fixture
def image_folder(part_images: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "incoming"
    folder.mkdir()
    for index, path in enumerate(class_images(part_images, "MT_Free", 3)):
        shutil.copy(path, folder / f"img_{index:02d}.jpg")
    (folder / "README.txt").write_text("not an image")
    return folder


def test_images_folder_reads_in_name_order_and_picks_up_new_files(image_folder: Path, part_images: Path) -> None:
    source = ImagesFolderSource(ImagesFolderConfig(path=str(image_folder), watch=True))
    source.open()
    expected = [cv2.imread(str(image_folder / f"img_{i:02d}.jpg")) for i in range(3)]
    frames = read_n(source, 3)
    assert [frame.image.shape for frame in frames] == [image.shape for image in expected]
    assert all(np.array_equal(f.image, e) for f, e in zip(frames, expected, strict=True))
    assert source.read(timeout=0.3) is None  # watching: nothing new yet
    new = class_images(part_images, "MT_Crack", 1)[0]
    shutil.copy(new, image_folder / "img_99.jpg")  # arrives while the source runs
    frame = read_n(source, 1, timeout=5)[0]
    assert np.array_equal(frame.image, cv2.imread(str(new)))
    source.close()


def test_images_folder_loops_and_skips_unreadable_files(image_folder: Path) -> None:
    (image_folder / "img_01b.png").write_bytes(b"broken")
    source = build_source("images_folder", {"path": str(image_folder), "loop": True})
    source.open()
    time.sleep(source.settle_s)  # let the broken file settle so it is tried (and skipped)
    assert len(read_n(source, 7)) == 7
    status = source.status()
    assert status["cycles"] >= 1 and status["skipped"] >= 1
    source.close()


def test_images_folder_pattern_recursive_and_end(image_folder: Path) -> None:
    (image_folder / "sub").mkdir()
    shutil.copy(image_folder / "img_00.jpg", image_folder / "sub" / "deep_00.jpg")
    flat = build_source("images_folder", {"path": str(image_folder), "pattern": "img_0[01]*", "loop": False})
    flat.open()
    assert len(read_n(flat, 5, timeout=1)) == 2
    with pytest.raises(SourceEnded):
        flat.read(timeout=0.2)
    deep = build_source(
        "images_folder", {"path": str(image_folder), "pattern": "deep_*", "recursive": True, "loop": False}
    )
    deep.open()
    assert len(read_n(deep, 5, timeout=1)) == 1


def test_images_folder_missing_or_empty_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="images folder not found"):
        build_source("images_folder", {"path": str(tmp_path / "missing")}).open()
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images matching"):
        build_source("images_folder", {"path": str(tmp_path / "empty")}).open()
    watching = build_source("images_folder", {"path": str(tmp_path / "empty"), "watch": True})
    watching.open()  # watching an empty folder is fine: images will come
    assert watching.read(timeout=0.2) is None


# ------------------------------------------------------------------ IP camera (MJPEG over HTTP)


def test_ip_camera_check_and_latest_frames(mjpeg_camera: MjpegCamera) -> None:
    result = check_source("ip_camera", {"url": mjpeg_camera.url})
    assert result.reachable and (result.width, result.height) == (320, 240)
    source = IpCameraSource(IpCameraConfig(url=mjpeg_camera.url))
    source.open()
    assert len(read_n(source, 3)) == 3
    time.sleep(0.5)  # the camera keeps sending while nobody reads: those frames go stale
    frame = source.read(timeout=1)
    assert frame is not None and time.monotonic() - frame.monotonic < 0.3
    assert source.status()["frames_dropped"] > 0
    source.close()


def test_ip_camera_unreachable_at_start_fails_without_leaking_the_password() -> None:
    config = IpCameraConfig(url="http://127.0.0.1:1/stream", username="admin", password="S3CR3T")
    with pytest.raises(SourceError) as error:
        IpCameraSource(config).open()
    assert "cannot connect" in str(error.value) and "S3CR3T" not in str(error.value)
    result = check_source("ip_camera", config)
    assert not result.reachable and "S3CR3T" not in result.error


def test_ip_camera_reconnects_after_the_camera_drops_out(mjpeg_camera: MjpegCamera) -> None:
    source = IpCameraSource(IpCameraConfig(url=mjpeg_camera.url, reconnect_delay_s=0.2))
    source.open()
    assert read_n(source, 2)
    mjpeg_camera.stop()
    status = wait_state(source, "reconnecting")
    assert status["error"]
    mjpeg_camera.start()
    status = wait_state(source, "connected")
    assert status["reconnects"] == 1
    assert read_n(source, 3)
    source.close()


def test_ip_camera_gives_up_after_max_attempts(mjpeg_camera: MjpegCamera) -> None:
    source = IpCameraSource(IpCameraConfig(url=mjpeg_camera.url, reconnect_delay_s=0.1, max_reconnect_attempts=2))
    source.open()
    mjpeg_camera.stop()
    status = wait_state(source, "failed")
    assert "gave up after 2 reconnect attempts" in status["error"]
    with pytest.raises(SourceError, match="gave up"):
        while True:
            source.read(timeout=0.5)
    source.close()


def test_credentials_are_url_encoded_into_the_stream_url() -> None:
    url = url_with_credentials("rtsp://old@cam.local:554/live?x=1", "ad min", "p@ss:word")
    assert url == "rtsp://ad%20min:p%40ss%3Aword@cam.local:554/live?x=1"
    assert url_with_credentials("rtsp://cam/live", None, None) == "rtsp://cam/live"


# ------------------------------------------------------------------ webcam (faked capture)


class ScriptedCapture:
    """Stands in for cv2.VideoCapture(index): numbered frames at ``fps``; ``script`` can unplug it."""

    instances: list[ScriptedCapture] = []
    plugged = True
    fps = 200.0

    def __init__(self, index: int, *args: object) -> None:
        self.index = index
        self.props: dict[int, float] = {}
        self.count = 0
        self.opened = ScriptedCapture.plugged
        ScriptedCapture.instances.append(self)

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self.opened

    def set(self, prop: int, value: float) -> bool:
        self.props[prop] = value
        return True

    def get(self, prop: int) -> float:
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def read(self) -> tuple[bool, np.ndarray | None]:
        time.sleep(1 / self.fps)
        if not ScriptedCapture.plugged:
            return False, None
        self.count += 1
        return True, np.full((48, 64, 3), self.count % 256, dtype=np.uint8)

    def release(self) -> None:
        self.opened = False


@pytest.fixture
def fake_camera(monkeypatch: pytest.MonkeyPatch) -> type[ScriptedCapture]:
    ScriptedCapture.instances = []
    ScriptedCapture.plugged = True
    monkeypatch.setattr(cv2, "VideoCapture", ScriptedCapture)
    return ScriptedCapture


def test_webcam_applies_settings_and_serves_only_the_newest_frame(fake_camera: type[ScriptedCapture]) -> None:
    source = WebcamSource(WebcamConfig(device_index=2, width=640, height=480, fps=15))
    source.open()
    capture = fake_camera.instances[0]
    assert capture.index == 2
    assert capture.props[cv2.CAP_PROP_FRAME_WIDTH] == 640 and capture.props[cv2.CAP_PROP_FPS] == 15
    assert capture.props[cv2.CAP_PROP_BUFFERSIZE] == 1
    first = source.read(timeout=1)
    time.sleep(0.2)  # ~40 frames arrive meanwhile
    second = source.read(timeout=1)
    assert int(second.image[0, 0, 0]) - int(first.image[0, 0, 0]) > 10  # skipped straight to a fresh one
    assert source.status()["frames_dropped"] > 10
    source.close()


def test_webcam_missing_at_start_then_unplugged_and_replugged(fake_camera: type[ScriptedCapture]) -> None:
    fake_camera.plugged = False
    with pytest.raises(SourceError, match="cannot open webcam 0"):
        build_source("webcam", {"device_index": 0}).open()
    fake_camera.plugged = True
    source = build_source("webcam", {"device_index": 0})
    source.initial_backoff_s = 0.1
    source.open()
    fake_camera.plugged = False
    wait_state(source, "reconnecting")
    fake_camera.plugged = True
    assert wait_state(source, "connected")["reconnects"] == 1
    assert source.read(timeout=1) is not None
    source.close()
    assert source.status()["state"] == "closed"
