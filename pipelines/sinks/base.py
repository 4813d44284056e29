"""Sink interface and the worker thread that keeps a slow or failing sink away from inference.

Each sink gets its own thread and a small bounded queue. The inference thread only calls
``offer``, which never blocks: during a sink's cooldown the event is skipped (``suppressed``),
and when the queue is full it is dropped (``dropped``). Failed deliveries (after the sink's own
retries) are counted as ``failed``; ``errors`` = dropped + failed feeds the pipeline's
``sink_errors`` metric. Everything is logged.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from abc import ABC, abstractmethod
from typing import Any

from pipelines.events import AnomalyEvent

log = logging.getLogger(__name__)


class Sink(ABC):
    """Delivers one event; raises on failure (after any retries of its own)."""

    type: str = "sink"

    def __init__(self) -> None:
        # Set when the pipeline stops: retry waits end early so shutdown is not held up by backoff.
        self.stopping = threading.Event()

    def wait_before_retry(self, seconds: float, problem: str) -> None:
        """Sleep between retries; if the pipeline stops meanwhile, fail with the last ``problem``."""
        if self.stopping.wait(seconds):
            raise RuntimeError(f"{problem} (pipeline stopping: no more retries)")

    @abstractmethod
    def send(self, event: AnomalyEvent) -> None: ...

    def close(self) -> None:  # noqa: B027 - most sinks hold nothing
        """Release connections; called once from the worker thread after the last send."""


class SinkWorker:
    def __init__(self, sink: Sink, name: str, cooldown_s: float = 0.0, queue_size: int = 16) -> None:
        self.sink = sink
        self.name = name
        self.cooldown_s = cooldown_s
        self._queue: queue.Queue[AnomalyEvent | None] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._last_accepted: float | None = None
        self._counts = {"sent": 0, "failed": 0, "dropped": 0, "suppressed": 0}
        self._last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"sink-{name}", daemon=True)
        self._closed = False

    def start(self) -> None:
        self._thread.start()

    def offer(self, event: AnomalyEvent) -> bool:
        """Queue the event unless the sink is cooling down or backed up; never blocks."""
        now = time.monotonic()
        with self._lock:
            if self._closed:
                return False
            if self._last_accepted is not None and now - self._last_accepted < self.cooldown_s:
                self._counts["suppressed"] += 1
                return False
            try:
                self._queue.put_nowait(event)
            except queue.Full:
                self._counts["dropped"] += 1
                log.warning("sink %s: queue full, dropped event for frame %d", self.name, event.frame.frame_index)
                return False
            self._last_accepted = now
            return True

    def _run(self) -> None:
        try:
            while True:
                event = self._queue.get()
                if event is None:
                    return
                try:
                    self.sink.send(event)
                except Exception as error:
                    with self._lock:
                        self._counts["failed"] += 1
                        self._last_error = f"{type(error).__name__}: {error}"
                    log.warning("sink %s (%s) failed: %s", self.name, self.sink.type, self._last_error)
                else:
                    with self._lock:
                        self._counts["sent"] += 1
        finally:
            try:
                self.sink.close()
            except Exception:
                log.exception("sink %s: error while closing", self.name)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued for up to ``timeout`` seconds, then stop; anything left counts as dropped."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.sink.stopping.set()
        if not self._thread.is_alive() and self._thread.ident is None:  # never started
            self.sink.close()
            return
        deadline = time.monotonic() + timeout
        while self._thread.is_alive():
            try:
                self._queue.put(None, timeout=0.1)
                break
            except queue.Full:
                if time.monotonic() >= deadline:
                    break
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            left = self._queue.qsize()
            with self._lock:
                self._counts["dropped"] += left
            log.warning("sink %s: still busy after %.1f s, abandoning %d queued event(s)", self.name, timeout, left)

    @property
    def errors(self) -> int:
        with self._lock:
            return self._counts["failed"] + self._counts["dropped"]

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {"name": self.name, "type": self.sink.type, **self._counts, "last_error": self._last_error}
