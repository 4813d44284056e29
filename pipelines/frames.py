"""Processed frames shared between the inference thread, sinks, captures and WebRTC viewers.

A processed frame keeps the camera image, the anomaly map and the score. The annotated picture
(heat map, label, score) is drawn on first use and cached, and so are its JPEG/PNG encodings:
the inference path never pays for drawing or encoding, frames nobody looks at are never drawn,
and several sinks or viewers reading the same frame share one rendering.
"""

from __future__ import annotations

import threading
from datetime import datetime

import cv2
import numpy as np

from pipelines.overlay import annotate


class AnnotatedFrame:
    def __init__(
        self,
        source_image: np.ndarray,
        anomaly_map: np.ndarray | None,
        frame_index: int,
        timestamp: datetime,
        anomaly_score: float,
        is_anomalous: bool,
    ) -> None:
        self.source_image = source_image  # BGR as read from the source
        self.anomaly_map = anomaly_map
        self.frame_index = frame_index
        self.timestamp = timestamp
        self.anomaly_score = anomaly_score
        self.is_anomalous = is_anomalous
        self._image: np.ndarray | None = None
        self._encoded: dict[str, bytes] = {}
        self._lock = threading.Lock()

    @property
    def image(self) -> np.ndarray:
        """The annotated BGR image (drawn once, on first access)."""
        with self._lock:
            if self._image is None:
                self._image = annotate(self.source_image, self.anomaly_map, self.anomaly_score, self.is_anomalous)
            return self._image

    def encode(self, fmt: str) -> bytes:
        """The annotated image as ``jpeg`` or ``png`` bytes, encoded once per format."""
        image = self.image
        with self._lock:
            if fmt not in self._encoded:
                self._encoded[fmt] = encode_image(image, fmt)
            return self._encoded[fmt]


def encode_image(image: np.ndarray, fmt: str) -> bytes:
    if fmt == "jpeg":
        ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    elif fmt == "png":
        ok, buffer = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    else:
        raise ValueError(f"unknown image format {fmt!r}")
    if not ok:
        raise RuntimeError(f"OpenCV could not encode the frame as {fmt}")
    return buffer.tobytes()


class LatestFrame:
    """Holds only the newest processed frame: writers never wait, slow readers just skip frames."""

    def __init__(self) -> None:
        self._frame: AnnotatedFrame | None = None
        self._version = 0
        self._lock = threading.Lock()

    def publish(self, frame: AnnotatedFrame) -> None:
        with self._lock:
            self._frame = frame
            self._version += 1

    def get(self) -> tuple[AnnotatedFrame | None, int]:
        """The newest frame and its version (0 before the first frame)."""
        with self._lock:
            return self._frame, self._version
