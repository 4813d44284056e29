"""Fixtures for the pipeline runtime tests, a plugin registered once by ``tests/conftest.py``, so the
session-scoped model and broker are shared by every module.
The model is trained on first use and kept in pytest's cache folder (``.pytest_cache``), keyed by
the training recipe and library versions, so later sessions reuse it; a file lock makes parallel
test workers (``make test`` runs several) train it once.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from filelock import FileLock

from tests.integration.pipeline_helpers import (
    AmqttBroker,
    MjpegCamera,
    MosquittoProcess,
    WebhookReceiver,
    class_images,
    frames_from,
    synthetic_parts_key,
    tiny_padim_key,
    train_tiny_padim,
    write_video,
)
from tests.network import port_open


@pytest.fixture(scope="session")
def model_dir(part_images: Path, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real anomalib PaDiM OpenVINO export, trained on synthetic parts (first use: ~20-40 s on 2 cores)."""
    name = f"tiny-padim-{tiny_padim_key(synthetic_parts_key())}"
    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    # Without the cache: the folder above each xdist worker's own temp folder, which the workers share.
    shared_temp = tmp_path_factory.getbasetemp().parent if "PYTEST_XDIST_WORKER" in os.environ else None
    folder = cache.mkdir(name) if cache is not None else (shared_temp or tmp_path_factory.getbasetemp()) / name
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(folder / ".lock"):
        return train_tiny_padim(part_images, folder)


@pytest.fixture
def part_video(part_images: Path, tmp_path: Path) -> Path:
    """12 frames: 8 good parts, 4 cracked ones, 320x240, 25 fps."""
    paths = class_images(part_images, "MT_Free", 8) + class_images(part_images, "MT_Crack", 4, start=4)
    return write_video(tmp_path / "line.avi", frames_from(paths))


@pytest.fixture
def mjpeg_camera(part_images: Path) -> Iterator[MjpegCamera]:
    camera = MjpegCamera(frames_from(class_images(part_images, "MT_Free", 6)))
    camera.start()
    yield camera
    camera.stop()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="session")
def mqtt_broker_port() -> Iterator[int]:
    """The machine's broker on 1883 if it answers, else our own mosquitto, else amqtt in-process (one per session)."""
    if port_open("127.0.0.1", 1883):
        yield 1883
    elif shutil.which("mosquitto"):
        broker = MosquittoProcess()
        broker.start()
        yield broker.port
        broker.stop()
    else:
        amqtt_broker = AmqttBroker()
        yield amqtt_broker.port
        amqtt_broker.stop()
