"""Live OpenCV captures (webcam, IP camera): a reader thread keeps only the newest frame and reconnects.

Reading a camera slower than it produces frames must not build a backlog: the reader thread
grabs continuously and overwrites one slot, so ``read`` always returns the freshest frame and
older ones are counted as dropped. When the stream breaks the thread reconnects with
exponential backoff and reports ``reconnecting`` (with the last error) in ``status``.
"""

from __future__ import annotations

import logging
import threading
from abc import abstractmethod
from typing import Any

import cv2

from pipelines.sources.base import Source, SourceError, SourceFrame

log = logging.getLogger(__name__)


class LiveCaptureSource(Source):
    live = True
    max_backoff_s = 30.0

    def __init__(self, *, reconnect: bool = True, initial_backoff_s: float = 1.0, max_attempts: int | None = None):
        self.reconnect = reconnect
        self.initial_backoff_s = initial_backoff_s
        self.max_attempts = max_attempts
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._capture: cv2.VideoCapture | None = None
        self._latest: SourceFrame | None = None
        self._version = 0
        self._read_version = 0
        self._state = "closed"
        self._error: str | None = None
        self._reconnects = 0
        self._dropped = 0
        self._fps: float | None = None

    @abstractmethod
    def _open_capture(self) -> cv2.VideoCapture:
        """An opened capture; raises SourceError (with no credentials in the text) when it cannot open."""

    @abstractmethod
    def describe(self) -> str:
        """How the source is named in messages (credentials masked)."""

    def _connect(self) -> cv2.VideoCapture:
        capture = self._open_capture()
        ok, image = capture.read()
        if not ok:
            capture.release()
            raise SourceError(f"{self.describe()} opened but delivered no frame")
        fps = capture.get(cv2.CAP_PROP_FPS)
        self._fps = float(fps) if fps and 0 < fps < 1000 else None
        self._publish(image)
        return capture

    def open(self) -> None:
        self._stop.clear()
        with self._cond:
            self._state, self._error = "connecting", None
        try:
            capture = self._connect()
        except SourceError as error:
            with self._cond:
                self._state, self._error = "failed", str(error)
            raise
        with self._cond:
            self._state = "connected"
        self._thread = threading.Thread(
            target=self._run, args=(capture,), name=f"source-{self.describe()}", daemon=True
        )
        self._thread.start()

    def _publish(self, image) -> None:
        frame = SourceFrame.now(image)
        with self._cond:
            if self._version != self._read_version:
                self._dropped += 1  # the previous frame was never read: it went stale
            self._latest = frame
            self._version += 1
            self._cond.notify_all()

    def _run(self, capture: cv2.VideoCapture | None) -> None:
        try:
            while capture is not None and not self._stop.is_set():
                ok, image = capture.read()
                if ok:
                    self._publish(image)
                    continue
                capture.release()
                capture = None
                if not self._stop.is_set():
                    log.warning("%s: stream lost", self.describe())
                    capture = self._reconnect("stream lost")
        finally:
            if capture is not None:
                capture.release()

    def _reconnect(self, reason: str) -> cv2.VideoCapture | None:
        if not self.reconnect:
            self._set_state("failed", f"{self.describe()}: {reason} (reconnect disabled)")
            return None
        delay = self.initial_backoff_s
        attempt = 0
        error = reason
        while not self._stop.is_set():
            attempt += 1
            if self.max_attempts is not None and attempt > self.max_attempts:
                self._set_state(
                    "failed", f"{self.describe()}: gave up after {self.max_attempts} reconnect attempts: {error}"
                )
                return None
            self._set_state("reconnecting", error)
            if self._stop.wait(delay):
                return None
            try:
                capture = self._connect()
            except SourceError as failure:
                error = str(failure)
                log.warning("%s: reconnect attempt %d failed: %s", self.describe(), attempt, error)
                delay = min(delay * 2, max(self.max_backoff_s, self.initial_backoff_s))
                continue
            with self._cond:
                self._reconnects += 1
            self._set_state("connected", None)
            log.info("%s: reconnected after %d attempt(s)", self.describe(), attempt)
            return capture
        return None

    def _set_state(self, state: str, error: str | None) -> None:
        with self._cond:
            self._state, self._error = state, error
            self._cond.notify_all()

    def read(self, timeout: float) -> SourceFrame | None:
        with self._cond:
            self._cond.wait_for(
                lambda: self._version != self._read_version or self._state in ("failed", "closed"), timeout
            )
            if self._version != self._read_version:
                self._read_version = self._version
                return self._latest
            if self._state == "failed":
                raise SourceError(self._error or f"{self.describe()} failed")
            if self._state == "closed":
                raise SourceError(f"{self.describe()} is closed")
            return None

    def close(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=10)
            if thread.is_alive():
                log.warning("%s: reader thread did not stop within 10 s", self.describe())
        with self._cond:
            if self._state != "failed":
                self._state = "closed"
            self._cond.notify_all()

    def nominal_fps(self) -> float | None:
        return self._fps

    def status(self) -> dict[str, Any]:
        with self._cond:
            return {
                "state": self._state,
                "error": self._error,
                "reconnects": self._reconnects,
                "frames_dropped": self._dropped,
            }
