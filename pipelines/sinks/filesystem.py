"""Writes one JSON file per event (and the annotated JPEG next to it) into ``output_dir``.

Files are written under a temporary name and renamed, so a program watching the folder
never reads half a file; the image is in place before its JSON appears.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from infra.configs.sinks import FilesystemConfig
from pipelines.events import IMAGE_CONTENT_TYPE, AnomalyEvent
from pipelines.sinks.base import Sink


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


class FilesystemSink(Sink):
    type = "filesystem"

    def __init__(self, config: FilesystemConfig) -> None:
        super().__init__()
        self.config = config
        self.output_dir = Path(config.output_dir).expanduser()
        self.output_dir.mkdir(parents=True, exist_ok=True)

    def send(self, event: AnomalyEvent) -> None:
        stamp = event.frame.timestamp.strftime("%Y%m%dT%H%M%S_%f")[:-3] + "Z"
        stem = f"{stamp}_f{event.frame.frame_index:08d}_{event.event_id[:8]}"
        image = None
        if self.config.save_images:
            image_name = f"{stem}.jpg"
            _write_atomic(self.output_dir / image_name, event.image_bytes())
            image = {"content_type": IMAGE_CONTENT_TYPE, "file": image_name}
        _write_atomic(self.output_dir / f"{stem}.json", json.dumps(event.payload(image), indent=2).encode("utf-8"))
