"""The one JSON schema every sink receives for an anomaly event.

An event is emitted for each processed frame whose ``anomaly_score`` is at or above the
pipeline's ``threshold`` (subject to each sink's cooldown). Webhook bodies, MQTT payloads and
filesystem ``.json`` files all carry this object::

    {
      "schema_version": 1,
      "event_id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",   # unique; lets receivers drop retried duplicates
      "event_type": "anomaly",
      "pipeline_id": "abc12345-...",                         # the pipeline definition
      "active_pipeline_id": "def67890-...",                  # this run of it
      "source": {"id": "src-uuid" | null, "type": "video_file", "name": "Line 3"},
      "timestamp": "2025-01-08T16:30:00.123Z",               # when the frame was read (UTC, ISO-8601)
      "frame_index": 1532,                                   # 0-based index of the frame in this run
      "anomaly_score": 0.87,                                 # normalised 0..1 (0.5 = the model's own threshold)
      "threshold": 0.5,                                      # the pipeline threshold the score was compared to
      "label": "anomalous",
      "image": null                                          # or one of the two forms below
    }

``image`` is ``null`` unless the sink asks for it. Webhook and MQTT sinks with
``include_image: true`` send ``{"content_type": "image/jpeg", "encoding": "base64", "data": "..."}``;
the filesystem sink with ``save_images: true`` writes the image next to the JSON file and sends
``{"content_type": "image/jpeg", "file": "<file name in output_dir>"}``. The image is the annotated
frame (heat map, label and score drawn on it).
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipelines.frames import AnnotatedFrame

SCHEMA_VERSION = 1
IMAGE_CONTENT_TYPE = "image/jpeg"
IMAGE_FORMAT = "jpeg"


def iso_utc(moment: datetime) -> str:
    """ISO-8601 in UTC with millisecond precision and a ``Z`` suffix."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class SourceInfo:
    type: str
    name: str
    id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "name": self.name}


@dataclass(frozen=True)
class AnomalyEvent:
    pipeline_id: str
    active_pipeline_id: str
    source: SourceInfo
    threshold: float
    frame: AnnotatedFrame
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def payload(self, image: dict[str, Any] | None = None) -> dict[str, Any]:
        """The documented JSON object; ``image`` is one of the forms in the module docstring."""
        return {
            "schema_version": SCHEMA_VERSION,
            "event_id": self.event_id,
            "event_type": "anomaly",
            "pipeline_id": self.pipeline_id,
            "active_pipeline_id": self.active_pipeline_id,
            "source": self.source.to_dict(),
            "timestamp": iso_utc(self.frame.timestamp),
            "frame_index": self.frame.frame_index,
            "anomaly_score": round(float(self.frame.anomaly_score), 6),
            "threshold": float(self.threshold),
            "label": "anomalous",
            "image": image,
        }

    def image_bytes(self) -> bytes:
        """The annotated frame as JPEG (encoded once, shared by every sink)."""
        return self.frame.encode(IMAGE_FORMAT)

    def inline_image(self) -> dict[str, Any]:
        return {
            "content_type": IMAGE_CONTENT_TYPE,
            "encoding": "base64",
            "data": base64.b64encode(self.image_bytes()).decode("ascii"),
        }

    def to_json(self, include_image: bool) -> bytes:
        """UTF-8 JSON for webhook and MQTT sinks."""
        image = self.inline_image() if include_image else None
        return json.dumps(self.payload(image), separators=(",", ":")).encode("utf-8")
