"""A video file decoded with OpenCV, frame by frame, looping if asked (the runtime paces it)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import cv2

from infra.configs.sources import VideoFileConfig
from pipelines.sources.base import Source, SourceEnded, SourceError, SourceFrame


class VideoFileSource(Source):
    def __init__(self, config: VideoFileConfig) -> None:
        self.config = config
        self.path = Path(config.path).expanduser()
        self._capture: cv2.VideoCapture | None = None
        self._lock = threading.Lock()
        self._state = "closed"
        self._loops = 0

    def open(self) -> None:
        if not self.path.is_file():
            raise SourceError(f"video file not found: {self.path}")
        capture = cv2.VideoCapture(str(self.path))
        ok, _ = capture.read() if capture.isOpened() else (False, None)
        if not ok:
            capture.release()
            raise SourceError(f"cannot decode video file {self.path}")
        capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
        with self._lock:
            self._capture = capture
            self._state = "playing"

    def read(self, timeout: float) -> SourceFrame | None:
        if self._capture is None:
            raise SourceError("video file source is not open")
        ok, image = self._capture.read()
        if not ok and self.config.loop:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._loops += 1
            ok, image = self._capture.read()
            if not ok:
                raise SourceError(f"cannot rewind video file {self.path}")
        if not ok:
            self._state = "ended"
            raise SourceEnded
        return SourceFrame.now(image)

    def close(self) -> None:
        with self._lock:
            if self._capture is not None:
                self._capture.release()
                self._capture = None
            if self._state != "ended":
                self._state = "closed"

    def nominal_fps(self) -> float | None:
        fps = self._capture.get(cv2.CAP_PROP_FPS) if self._capture is not None else 0.0
        return float(fps) if fps and fps > 0 else None

    def status(self) -> dict[str, Any]:
        return {"state": self._state, "error": None, "loops": self._loops}
