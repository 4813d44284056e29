"""A local camera by device index (``/dev/video<N>`` on Linux) through OpenCV."""

from __future__ import annotations

import cv2

from infra.configs.sources import WebcamConfig
from pipelines.sources.base import SourceError
from pipelines.sources.live import LiveCaptureSource


class WebcamSource(LiveCaptureSource):
    def __init__(self, config: WebcamConfig) -> None:
        super().__init__(reconnect=True, initial_backoff_s=1.0)
        self.config = config

    def describe(self) -> str:
        return f"webcam {self.config.device_index}"

    def _open_capture(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(self.config.device_index)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"cannot open {self.describe()} (is the camera connected and free?)")
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        if self.config.width:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.config.width)
        if self.config.height:
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.config.height)
        if self.config.fps:
            capture.set(cv2.CAP_PROP_FPS, self.config.fps)
        return capture
