"""Sinks against real receivers: an HTTP server and an MQTT broker on loopback, and a real folder."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipelines.events import AnomalyEvent, SourceInfo
from pipelines.frames import AnnotatedFrame
from pipelines.sinks import build_sink_worker
from tests.integration.pipeline_helpers import MosquittoProcess, MqttListener, WebhookReceiver
from tests.network import free_port

pytestmark = pytest.mark.timeout(60)


def make_event(index: int = 3, score: float = 0.93) -> AnomalyEvent:
    image = np.zeros((60, 80, 3), np.uint8)
    image[:, 40:] = (0, 0, 255)
    frame = AnnotatedFrame(image, None, index, datetime(2025, 1, 8, 16, 30, tzinfo=UTC), score, True)
    return AnomalyEvent("pipe-1", "run-1", SourceInfo("video_file", "Line 3", "src-9"), 0.5, frame)


def decode_inline(image: dict) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(base64.b64decode(image["data"]), np.uint8), cv2.IMREAD_COLOR)


# ------------------------------------------------------------------ webhook


def test_webhook_sends_the_event_with_method_headers_and_image(webhook_receiver: WebhookReceiver) -> None:
    worker = build_sink_worker(
        "webhook",
        "alerts",
        {
            "url": webhook_receiver.url,
            "method": "PUT",
            "headers": {"X-Line": "3", "Authorization": "Bearer t0k"},
            "include_image": True,
            "cooldown_s": 0,
        },
    )
    worker.start()
    worker.offer(make_event())
    bodies = webhook_receiver.wait_for(1)
    worker.close()
    request = webhook_receiver.requests[0]
    assert request["method"] == "PUT" and request["path"] == "/hooks/anomaly"
    assert request["headers"]["X-Line"] == "3" and request["headers"]["Authorization"] == "Bearer t0k"
    assert request["headers"]["Content-Type"] == "application/json"
    body = bodies[0]
    assert body["pipeline_id"] == "pipe-1" and body["frame_index"] == 3 and body["anomaly_score"] == 0.93
    assert decode_inline(body["image"]).shape == (60, 80, 3)
    assert worker.status()["sent"] == 1


def test_webhook_retries_transient_errors_with_backoff(webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.responses = [503, 502]
    worker = build_sink_worker(
        "webhook",
        "alerts",
        {
            "url": webhook_receiver.url,
            "retries": 3,
            "backoff_s": 0.1,
            "cooldown_s": 0,
        },
    )
    worker.start()
    started = time.monotonic()
    worker.offer(make_event())
    assert len(webhook_receiver.wait_for(1)) == 1
    elapsed = time.monotonic() - started
    worker.close()
    assert [r["status"] for r in webhook_receiver.requests] == [503, 502, 200]
    assert elapsed >= 0.1 + 0.2  # backoff 0.1 s, then 0.2 s
    assert json.loads(webhook_receiver.requests[0]["body"])["image"] is None  # include_image defaults off
    assert worker.status()["sent"] == 1 and worker.errors == 0


def test_webhook_failures_are_counted_not_raised(webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.responses = [400]
    worker = build_sink_worker("webhook", "alerts", {"url": webhook_receiver.url, "retries": 3, "cooldown_s": 0})
    worker.start()
    worker.offer(make_event())  # 400: not worth retrying
    dead = build_sink_worker(
        "webhook",
        "dead",
        {
            "url": f"http://127.0.0.1:{free_port()}/x",
            "retries": 1,
            "backoff_s": 0.05,
            "cooldown_s": 0,
        },
    )
    dead.start()
    dead.offer(make_event())
    deadline = time.monotonic() + 10
    while dead.status()["failed"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    worker.close()
    dead.close()
    assert len(webhook_receiver.requests) == 1
    assert worker.status()["failed"] == 1 and "HTTP 400" in worker.status()["last_error"]
    assert dead.status()["failed"] == 1 and "ConnectError" in dead.status()["last_error"]


def test_a_slow_webhook_never_blocks_offers(webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.delay_s = 0.5
    worker = build_sink_worker("webhook", "slow", {"url": webhook_receiver.url, "cooldown_s": 0, "timeout_s": 5})
    worker.start()
    started = time.monotonic()
    for index in range(40):
        worker.offer(make_event(index))
    assert time.monotonic() - started < 0.2
    worker.close(timeout=1)
    status = worker.status()
    assert status["dropped"] > 0 and status["sent"] >= 1


# ------------------------------------------------------------------ MQTT


def test_mqtt_publishes_events_with_qos_1(mqtt_broker_port: int) -> None:
    topic = f"inspect/test/{time.monotonic_ns()}"
    listener = MqttListener(mqtt_broker_port, topic)
    worker = build_sink_worker(
        "mqtt",
        "broker",
        {
            "broker": f"mqtt://127.0.0.1:{mqtt_broker_port}",
            "topic": topic,
            "include_image": True,
            "cooldown_s": 0,
        },
    )
    worker.start()
    worker.offer(make_event(1))
    worker.offer(make_event(2))
    messages = listener.wait_for(2)
    worker.close()
    listener.close()
    assert [m["frame_index"] for m in messages] == [1, 2]
    assert all(m["qos"] == 1 and m["topic"] == topic for m in messages)
    assert messages[0]["source"] == {"id": "src-9", "type": "video_file", "name": "Line 3"}
    assert decode_inline(messages[0]["image"]).shape == (60, 80, 3)
    assert worker.status()["sent"] == 2


@pytest.mark.usefixtures("mosquitto_installed")
def test_mqtt_reconnects_after_the_broker_restarts() -> None:
    broker = MosquittoProcess()
    broker.start()
    topic = "inspect/restart"
    worker = build_sink_worker(
        "mqtt",
        "broker",
        {
            "broker": f"mqtt://127.0.0.1:{broker.port}",
            "topic": topic,
            "cooldown_s": 0,
        },
    )
    worker.start()
    try:
        listener = MqttListener(broker.port, topic)
        worker.offer(make_event(1))
        assert len(listener.wait_for(1)) == 1
        listener.close()
        broker.stop()
        time.sleep(0.3)
        broker.start()  # same port
        listener = MqttListener(broker.port, topic)
        worker.offer(make_event(2))  # waits for paho's reconnect (backoff starts at 1 s)
        messages = listener.wait_for(1, timeout=20)
        listener.close()
        assert [m["frame_index"] for m in messages] == [2]
    finally:
        worker.close()
        broker.stop()
    assert worker.status()["sent"] == 2


def test_mqtt_unreachable_broker_counts_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pipelines.sinks.mqtt.PUBLISH_TIMEOUT_S", 0.5)
    worker = build_sink_worker(
        "mqtt",
        "nowhere",
        {
            "broker": f"mqtt://127.0.0.1:{free_port()}",
            "topic": "x",
            "cooldown_s": 0,
        },
    )
    worker.start()
    worker.offer(make_event())
    worker.close()
    assert worker.status()["failed"] == 1 and "not connected" in worker.status()["last_error"]


# ------------------------------------------------------------------ filesystem


def test_filesystem_writes_json_and_image(tmp_path: Path) -> None:
    output = tmp_path / "alerts" / "line3"  # created on demand
    worker = build_sink_worker("filesystem", "files", {"output_dir": str(output), "cooldown_s": 0})
    worker.start()
    worker.offer(make_event(5))
    worker.close()
    files = sorted(path.name for path in output.iterdir())
    assert len(files) == 2 and files[0].endswith(".jpg") and files[1].endswith(".json")
    assert files[0].startswith("20250108T163000_000Z_f00000005_")
    payload = json.loads((output / files[1]).read_text())
    assert payload["image"] == {"content_type": "image/jpeg", "file": files[0]}
    assert payload["frame_index"] == 5 and payload["timestamp"] == "2025-01-08T16:30:00.000Z"
    assert cv2.imread(str(output / files[0])).shape == (60, 80, 3)


def test_filesystem_without_images_and_with_cooldown(tmp_path: Path) -> None:
    worker = build_sink_worker(
        "filesystem",
        "files",
        {
            "output_dir": str(tmp_path),
            "save_images": False,
            "cooldown_s": 60,
        },
    )
    worker.start()
    for index in range(3):
        worker.offer(make_event(index))
    worker.close()
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".json"
    assert json.loads(files[0].read_text())["image"] is None
    assert worker.status()["suppressed"] == 2
