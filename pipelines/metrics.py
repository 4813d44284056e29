"""Pipeline counters and timings, and the thread that reports them at a steady interval.

``avg_inference_time_ms`` and the latency percentiles cover a rolling window of recent frames
(so they follow a model swap or a load change), ``fps`` counts frames finished over the last
few seconds; the counters are totals since the start. ``recent_scores`` are the anomaly scores of
the last frames (oldest first), for a live score chart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


# Scores kept for the live chart: a minute at 2 fps, a few seconds at 30; small enough for every heartbeat.
RECENT_SCORES = 120


class MetricsTracker:
    def __init__(self, timing_window: int = 256, latency_window: int = 2048, fps_window_s: float = 3.0,
                 score_window: int = RECENT_SCORES) -> None:
        self._lock = threading.Lock()
        self.frames_processed = 0
        self.anomalies_detected = 0
        self._inference_ms: deque[float] = deque(maxlen=timing_window)
        self._latency_ms: deque[float] = deque(maxlen=latency_window)
        self._finished_at: deque[float] = deque()
        self._scores: deque[float] = deque(maxlen=score_window)
        self._fps_window_s = fps_window_s

    def record_frame(self, inference_ms: float, latency_ms: float, anomalous: bool, score: float | None = None) -> None:
        now = time.monotonic()
        with self._lock:
            if score is not None:
                self._scores.append(score)
            self.frames_processed += 1
            self.anomalies_detected += int(anomalous)
            self._inference_ms.append(inference_ms)
            self._latency_ms.append(latency_ms)
            self._finished_at.append(now)
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._finished_at and now - self._finished_at[0] > self._fps_window_s:
            self._finished_at.popleft()

    def fps(self) -> float:
        now = time.monotonic()
        with self._lock:
            self._trim(now)
            count = len(self._finished_at)
            if count < 2:
                return 0.0
            return (count - 1) / max(now - self._finished_at[0], 1e-6)

    def latencies_ms(self) -> np.ndarray:
        """Source-read-to-published latency of the frames in the latency window."""
        with self._lock:
            return np.fromiter(self._latency_ms, dtype=np.float64)

    def snapshot(self, sink_errors: int) -> dict[str, Any]:
        fps = self.fps()
        latencies = self.latencies_ms()
        with self._lock:
            inference = float(np.mean(self._inference_ms)) if self._inference_ms else 0.0
            frames, anomalies = self.frames_processed, self.anomalies_detected
            scores = [round(float(score), 4) for score in self._scores]
        p50, p95 = np.percentile(latencies, [50, 95]) if latencies.size else (0.0, 0.0)
        return {
            "frames_processed": frames,
            "anomalies_detected": anomalies,
            "avg_inference_time_ms": round(inference, 2),
            "fps": round(fps, 2),
            "sink_errors": sink_errors,
            "latency_ms_p50": round(float(p50), 2),
            "latency_ms_p95": round(float(p95), 2),
            "recent_scores": scores,
        }


class PeriodicReporter:
    """Calls ``callback(snapshot())`` every ``interval_s`` on its own thread, and once more on stop."""

    def __init__(
        self, snapshot: Callable[[], dict[str, Any]], callback: Callable[[dict[str, Any]], None], interval_s: float
    ) -> None:
        self._snapshot = snapshot
        self._callback = callback
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-reporter", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _report(self) -> None:
        try:
            self._callback(self._snapshot())
        except Exception:
            log.exception("metrics callback failed")

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._report()

    def stop(self) -> None:
        """Stop the timer and deliver one last report (the final state)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._interval_s + 5)
        self._report()
