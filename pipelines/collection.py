"""Data collection from the line: which scored frames become project media, stored off the frame path.

:class:`CollectionPolicy` decides per frame (pure, the clock is passed in) and
:class:`FrameCollector` keeps the line fast: the inference thread only asks the policy and hands
an accepted frame to a small bounded queue; encoding and storing happen on the collector's own
thread. When that thread falls behind, new frames wait for a free slot (the policy keeps
looking for the next one) instead of slowing the line. A failing store counts
``collection_errors`` and the line keeps running.

Labels: ``confident_normal`` frames are ``normal``; ``interval`` frames are ``normal`` below the
pipeline threshold, else ``anomalous``; ``uncertain`` frames are ``unlabelled`` (a person decides).
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime

import numpy as np

from infra.collected_media import CollectedFrame
from infra.configs import DataCollection
from pipelines.frames import encode_image

log = logging.getLogger(__name__)

HOUR_S = 3600.0
QUEUE_SIZE = 4  # frames waiting to be stored; a few seconds of a slow disk at most


SaveCollected = Callable[[CollectedFrame], None]


class CollectionPolicy:
    """Per-frame decision: collect it (with which label) or not, under the config's rates."""

    def __init__(self, config: DataCollection) -> None:
        self.config = config
        self._last: float | None = None
        self._taken: deque[float] = deque()  # times of the frames collected in the last hour

    def decide(self, score: float, threshold: float, now: float) -> str | None:
        """The label to collect this frame with, or None. Does not count it: call :meth:`taken`."""
        config = self.config
        if config.mode == "off":
            return None
        if config.mode == "interval":
            label = "normal" if score < threshold else "anomalous"
        elif config.mode == "confident_normal":
            label = "normal" if score < config.score_below else None
        else:
            low, high = config.band
            label = "unlabelled" if low <= score <= high else None
        if label is None:
            return None
        if config.mode != "uncertain" and self._last is not None and now - self._last < config.interval_s:
            return None
        while self._taken and now - self._taken[0] >= HOUR_S:
            self._taken.popleft()
        return label if len(self._taken) < config.max_per_hour else None

    def taken(self, now: float) -> None:
        self._last = now
        self._taken.append(now)


class FrameCollector:
    """Runs the policy on the inference thread and stores accepted frames on its own thread."""

    def __init__(self, save: SaveCollected, config: DataCollection, clock: Callable[[], float] = time.monotonic,
                 queue_size: int = QUEUE_SIZE) -> None:
        self._save = save
        self._policy = CollectionPolicy(config)
        self._clock = clock
        self._queue: queue.Queue[tuple[np.ndarray, str, float, datetime, int] | None] = queue.Queue(queue_size)
        self._lock = threading.Lock()
        self.collected = 0
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name="frame-collector", daemon=True)

    @property
    def config(self) -> DataCollection:
        return self._policy.config

    def update(self, config: DataCollection) -> None:
        """A new config applies to the next frame; the rate counters carry over."""
        self._policy.config = config

    def offer(self, image: np.ndarray, score: float, threshold: float, timestamp: datetime, frame_index: int) -> None:
        """Called for every scored frame; never blocks."""
        now = self._clock()
        label = self._policy.decide(score, threshold, now)
        if label is None:
            return
        try:
            self._queue.put_nowait((image.copy(), label, score, timestamp, frame_index))
        except queue.Full:
            return  # the store is behind: the policy will offer the next suitable frame
        self._policy.taken(now)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Store what is queued (bounded by ``timeout``), then end the thread."""
        if not self._thread.is_alive():
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._queue.put(None, timeout=0.1)
                break
            except queue.Full:
                if time.monotonic() > deadline:
                    return  # daemon thread: left behind rather than holding up the stop
        self._thread.join(max(0.1, deadline - time.monotonic()))

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {"collected": self.collected, "collection_errors": self.errors}

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            image, label, score, timestamp, frame_index = item
            try:
                self._save(encode_frame(image, label, score, timestamp, frame_index))
            except Exception:
                log.exception("could not store a collected frame")
                with self._lock:
                    self.errors += 1
                continue
            with self._lock:
                self.collected += 1


def encode_frame(image: np.ndarray, label: str, score: float, timestamp: datetime, frame_index: int) -> CollectedFrame:
    """The raw BGR frame as PNG (its thumbnail is rendered by the writer, at the platform's thumbnail size)."""
    png = encode_image(image, "png")
    return CollectedFrame(png=png, pixels=image, sha256=hashlib.sha256(png).hexdigest(), label=label,
                          score=float(score), timestamp=timestamp, frame_index=frame_index)
