"""The one event schema every sink receives."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import cv2
import numpy as np

from pipelines.events import SCHEMA_VERSION, AnomalyEvent, SourceInfo, iso_utc
from pipelines.frames import AnnotatedFrame, LatestFrame


def _event() -> AnomalyEvent:
    image = np.full((48, 64, 3), (10, 200, 30), dtype=np.uint8)
    frame = AnnotatedFrame(image, None, 7, datetime(2025, 1, 8, 16, 30, 0, 123456, tzinfo=UTC), 0.8765, True)
    return AnomalyEvent("pipe-1", "active-1", SourceInfo("video_file", "Line 3", "src-1"), 0.5, frame)


def test_payload_has_every_documented_field() -> None:
    payload = json.loads(_event().to_json(include_image=False))
    assert payload == {
        "schema_version": SCHEMA_VERSION,
        "event_id": payload["event_id"],
        "event_type": "anomaly",
        "pipeline_id": "pipe-1",
        "active_pipeline_id": "active-1",
        "source": {"id": "src-1", "type": "video_file", "name": "Line 3"},
        "timestamp": "2025-01-08T16:30:00.123Z",
        "frame_index": 7,
        "anomaly_score": 0.8765,
        "threshold": 0.5,
        "label": "anomalous",
        "image": None,
    }
    assert len(payload["event_id"]) == 36


def test_inline_image_is_the_annotated_frame_as_base64_jpeg() -> None:
    event = _event()
    image = json.loads(event.to_json(include_image=True))["image"]
    assert image["content_type"] == "image/jpeg" and image["encoding"] == "base64"
    decoded = cv2.imdecode(np.frombuffer(base64.b64decode(image["data"]), np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (48, 64, 3)
    assert np.abs(decoded[40:].astype(int) - (10, 200, 30)).max() < 8  # below the banner: the frame itself
    assert np.abs(decoded[2, 2].astype(int) - (40, 40, 220)).max() < 30  # the red ANOMALY banner


def test_the_overlay_is_drawn_lazily_once_and_shared() -> None:
    event = _event()
    frame = event.frame
    assert frame._image is None  # nothing drawn until someone wants the picture
    assert event.image_bytes() is event.image_bytes()
    assert frame.image is frame.image
    assert (frame.source_image == (10, 200, 30)).all()  # the camera image itself is untouched


def test_iso_utc_converts_other_zones_and_ends_with_z() -> None:
    moment = datetime(2025, 1, 8, 18, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    assert iso_utc(moment) == "2025-01-08T16:00:00.000Z"


def test_latest_frame_keeps_only_the_newest() -> None:
    slot = LatestFrame()
    assert slot.get() == (None, 0)
    first, second = _event().frame, _event().frame
    slot.publish(first)
    slot.publish(second)
    assert slot.get() == (second, 2)
