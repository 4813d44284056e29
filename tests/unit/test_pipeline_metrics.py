"""Counters, rolling timings and the periodic reporter."""

from __future__ import annotations

import threading
import time

from pipelines.metrics import MetricsTracker, PeriodicReporter


def test_snapshot_counts_and_averages() -> None:
    tracker = MetricsTracker(timing_window=2)
    tracker.record_frame(inference_ms=10, latency_ms=20, anomalous=False)
    tracker.record_frame(inference_ms=20, latency_ms=40, anomalous=True)
    tracker.record_frame(inference_ms=30, latency_ms=60, anomalous=True)
    snapshot = tracker.snapshot(sink_errors=4)
    assert snapshot["frames_processed"] == 3
    assert snapshot["anomalies_detected"] == 2
    assert snapshot["avg_inference_time_ms"] == 25.0  # rolling window of the last two
    assert snapshot["sink_errors"] == 4
    assert snapshot["latency_ms_p50"] == 40.0
    assert 40.0 < snapshot["latency_ms_p95"] <= 60.0


def test_fps_measures_recent_frames_only() -> None:
    tracker = MetricsTracker(fps_window_s=0.5)
    for _ in range(11):
        tracker.record_frame(1, 1, False)
        time.sleep(0.02)
    assert 25 < tracker.fps() < 60
    time.sleep(0.6)
    assert tracker.fps() == 0.0


def test_reporter_reports_periodically_and_once_more_on_stop() -> None:
    calls: list[int] = []
    counter = iter(range(1000))
    reported = threading.Event()

    def callback(snapshot: dict) -> None:
        calls.append(snapshot["n"])
        if len(calls) >= 3:
            reported.set()

    reporter = PeriodicReporter(lambda: {"n": next(counter)}, callback, interval_s=0.05)
    reporter.start()
    assert reported.wait(5)
    reporter.stop()
    final = len(calls)
    time.sleep(0.15)
    assert len(calls) == final  # nothing after stop
    assert calls == sorted(calls)


def test_a_failing_callback_does_not_stop_reporting() -> None:
    seen = threading.Event()
    attempts: list[int] = []

    def callback(snapshot: dict) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("database down")
        seen.set()

    reporter = PeriodicReporter(dict, callback, interval_s=0.02)
    reporter.start()
    assert seen.wait(5)
    reporter.stop()


def test_recent_scores_keep_the_last_frames_oldest_first() -> None:
    tracker = MetricsTracker(score_window=3)
    for score in (0.1, 0.2, 0.3, 0.45678):
        tracker.record_frame(1, 1, score >= 0.3, score)
    tracker.record_frame(1, 1, False)  # a frame recorded without a score adds none
    assert tracker.snapshot(sink_errors=0)["recent_scores"] == [0.2, 0.3, 0.4568]
