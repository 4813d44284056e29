"""The sink worker: a slow or failing sink never blocks the caller; cooldown, drops and failures counted.

The sinks here are tiny in-memory ones made for the worker's logic; the real webhook, MQTT and
filesystem sinks are tested against real servers in tests/integration/test_pipeline_sinks.py.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import numpy as np

from pipelines.events import AnomalyEvent, SourceInfo
from pipelines.frames import AnnotatedFrame
from pipelines.sinks.base import Sink, SinkWorker


def make_event(index: int = 0) -> AnomalyEvent:
    frame = AnnotatedFrame(np.zeros((8, 8, 3), np.uint8), None, index, datetime.now(UTC), 0.9, True)
    return AnomalyEvent("p", "a", SourceInfo("video_file", "v"), 0.5, frame)


class GatedSink(Sink):
    """Records events; waits for ``gate`` before each send; raises while ``fail`` is set."""

    type = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.fail = False
        self.sent: list[int] = []
        self.closed = False

    def send(self, event: AnomalyEvent) -> None:
        self.gate.wait(10)
        if self.fail:
            raise ConnectionError("receiver down")
        self.sent.append(event.frame.frame_index)

    def close(self) -> None:
        self.closed = True


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_delivers_in_order_and_closes_the_sink() -> None:
    sink = GatedSink()
    worker = SinkWorker(sink, "mem")
    worker.start()
    for index in range(5):
        assert worker.offer(make_event(index))
    worker.close()
    assert sink.sent == [0, 1, 2, 3, 4] and sink.closed
    assert worker.status() | {"last_error": None} == {
        "name": "mem",
        "type": "memory",
        "sent": 5,
        "failed": 0,
        "dropped": 0,
        "suppressed": 0,
        "last_error": None,
    }


def test_a_stalled_sink_never_blocks_offer_and_overflow_is_dropped() -> None:
    sink = GatedSink()
    sink.gate.clear()
    worker = SinkWorker(sink, "slow", queue_size=3)
    worker.start()
    started = time.monotonic()
    accepted = [worker.offer(make_event(index)) for index in range(10)]
    assert time.monotonic() - started < 0.5
    # One event is in the sink (stuck), three wait in the queue, the rest are dropped.
    assert wait_until(lambda: worker.status()["dropped"] >= 6)
    assert accepted.count(True) in (3, 4)
    assert worker.errors == worker.status()["dropped"]
    sink.gate.set()
    worker.close()
    assert len(sink.sent) == accepted.count(True)


def test_failures_are_counted_with_the_last_error() -> None:
    sink = GatedSink()
    sink.fail = True
    worker = SinkWorker(sink, "down")
    worker.start()
    worker.offer(make_event(1))
    worker.offer(make_event(2))
    worker.close()
    status = worker.status()
    assert status["failed"] == 2 and status["sent"] == 0
    assert status["last_error"] == "ConnectionError: receiver down"
    assert worker.errors == 2


def test_cooldown_suppresses_events_then_lets_the_next_one_through() -> None:
    sink = GatedSink()
    worker = SinkWorker(sink, "calm", cooldown_s=0.3)
    worker.start()
    assert worker.offer(make_event(1))
    assert not worker.offer(make_event(2))
    assert not worker.offer(make_event(3))
    time.sleep(0.35)
    assert worker.offer(make_event(4))
    worker.close()
    assert sink.sent == [1, 4]
    assert worker.status()["suppressed"] == 2
    assert worker.errors == 0  # suppression is intended, not an error


def test_close_gives_up_on_a_hung_sink_and_counts_what_was_left() -> None:
    sink = GatedSink()
    sink.gate.clear()
    worker = SinkWorker(sink, "hung", queue_size=4)
    worker.start()
    for index in range(3):
        worker.offer(make_event(index))
    assert wait_until(lambda: worker._queue.qsize() == 2)
    started = time.monotonic()
    worker.close(timeout=0.3)
    assert time.monotonic() - started < 2
    assert worker.status()["dropped"] >= 2
    assert not worker.offer(make_event(9))  # closed workers accept nothing
    sink.gate.set()


def test_close_without_start_still_closes_the_sink() -> None:
    sink = GatedSink()
    SinkWorker(sink, "idle").close()
    assert sink.closed
