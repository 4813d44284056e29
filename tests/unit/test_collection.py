"""Data collection policy (rates, bands, max_per_hour, labels) and the collector thread around it."""

from __future__ import annotations

import hashlib
import io
import threading
from datetime import UTC, datetime

import numpy as np
import pytest
from PIL import Image

from infra.configs import DataCollection
from pipelines.collection import CollectionPolicy, FrameCollector, encode_frame

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def run(policy: CollectionPolicy, scores: list[float], step_s: float, threshold: float = 0.5,
        start: float = 0.0) -> list[tuple[float, float, str]]:
    """Feed one frame every ``step_s``; returns (time, score, label) of the frames collected."""
    taken = []
    for index, score in enumerate(scores):
        now = start + index * step_s
        label = policy.decide(score, threshold, now)
        if label is not None:
            policy.taken(now)
            taken.append((now, score, label))
    return taken


def test_off_collects_nothing() -> None:
    assert run(CollectionPolicy(DataCollection()), [0.0, 0.5, 1.0] * 100, 1.0) == []


def test_interval_takes_one_frame_per_interval_labelled_by_the_threshold() -> None:
    policy = CollectionPolicy(DataCollection(mode="interval", interval_s=2.0, max_per_hour=1000))
    scores = [0.1, 0.9, 0.3] * 66  # 198 frames at 10 fps: 19.8 s
    taken = run(policy, scores, 0.1, threshold=0.5)
    assert len(taken) == 10 and [round(t, 1) for t, _, _ in taken] == [2.0 * i for i in range(10)]
    assert all(label == ("normal" if score < 0.5 else "anomalous") for _, score, label in taken)
    assert {label for _, _, label in taken} == {"normal", "anomalous"}


def test_confident_normal_takes_low_scores_at_most_once_per_interval() -> None:
    policy = CollectionPolicy(DataCollection(mode="confident_normal", score_below=0.2, interval_s=1.0))
    scores = [0.19, 0.2, 0.5, 0.05, 0.9] * 40  # 200 frames at 10 fps: 20 s
    taken = run(policy, scores, 0.1)
    assert {label for _, _, label in taken} == {"normal"} and all(score < 0.2 for _, score, _ in taken)
    gaps = np.diff([t for t, _, _ in taken])
    assert len(taken) >= 15 and gaps.min() >= 1.0 - 1e-9


def test_uncertain_takes_every_frame_inside_the_band_unlabelled() -> None:
    policy = CollectionPolicy(DataCollection(mode="uncertain", band=[0.4, 0.6], max_per_hour=1000))
    scores = [0.39, 0.4, 0.5, 0.6, 0.61, 0.0, 1.0]
    taken = run(policy, scores, 0.01)
    assert [(score, label) for _, score, label in taken] == [(0.4, "unlabelled"), (0.5, "unlabelled"),
                                                             (0.6, "unlabelled")]


def test_max_per_hour_caps_every_mode_over_a_sliding_hour() -> None:
    policy = CollectionPolicy(DataCollection(mode="interval", interval_s=1.0, max_per_hour=5))
    first_hour = run(policy, [0.1] * 3600, 1.0)
    assert [t for t, _, _ in first_hour] == [0.0, 1.0, 2.0, 3.0, 4.0]
    next_hour = run(policy, [0.1] * 10, 1.0, start=3600.0)
    assert [t for t, _, _ in next_hour] == [3600.0, 3601.0, 3602.0, 3603.0, 3604.0]

    uncertain = CollectionPolicy(DataCollection(mode="uncertain", max_per_hour=3))
    assert len(run(uncertain, [0.5] * 100, 0.01)) == 3


def test_a_new_config_keeps_the_rate_counters() -> None:
    policy = CollectionPolicy(DataCollection(mode="interval", interval_s=1.0, max_per_hour=2))
    assert len(run(policy, [0.1] * 5, 1.0)) == 2
    policy.config = DataCollection(mode="confident_normal", interval_s=1.0, max_per_hour=2)
    assert run(policy, [0.1] * 5, 1.0, start=10.0) == []  # still two in the last hour


def _frame(shade: int = 90) -> np.ndarray:
    image = np.full((300, 400, 3), shade, dtype=np.uint8)
    image[:, :200, 2] = 255  # red in BGR: the stored PNG must keep the source's colours
    return image


@pytest.mark.parametrize(("thumbnail_size", "expected"), [(256, (256, 192)), (64, (64, 48))])
def test_encoded_frames_are_the_raw_image_with_a_thumbnail_of_the_configured_size(thumbnail_size, expected) -> None:
    frame = encode_frame(_frame(), "normal", 0.12, NOW, 7)
    with Image.open(io.BytesIO(frame.png)) as image:
        assert image.size == (400, 300) and image.getpixel((0, 0)) == (255, 90, 90)
    facts = frame.facts(thumbnail_size)  # INSPECT_THUMBNAIL_SIZE, as the writer passes it
    with Image.open(io.BytesIO(facts.thumbnail_png)) as thumb:
        assert thumb.size == expected and thumb.convert("RGB").getpixel((0, 0)) == (255, 90, 90)
    assert facts.sha256 == hashlib.sha256(frame.png).hexdigest() and facts.size_bytes == len(frame.png)
    assert (frame.label, frame.score, frame.filename) == ("normal", 0.12, "collected-20261130T120000000000-7.png")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_collector_stores_off_the_calling_thread_and_counts_failures() -> None:
    saved, threads = [], set()
    fail = threading.Event()

    def save(frame) -> None:
        threads.add(threading.current_thread().name)
        if fail.is_set():
            raise OSError("disk full")
        saved.append(frame)

    clock = Clock()
    collector = FrameCollector(save, DataCollection(mode="interval", interval_s=1.0), clock=clock)
    collector.start()
    for index in range(3):
        clock.now = float(index)
        collector.offer(_frame(index), 0.9, 0.5, NOW, index)
    collector.stop()
    assert [frame.label for frame in saved] == ["anomalous"] * 3 and threads == {"frame-collector"}
    assert collector.counts() == {"collected": 3, "collection_errors": 0}

    fail.set()
    failing = FrameCollector(save, DataCollection(mode="interval", interval_s=1.0), clock=clock)
    failing.start()
    for index in range(4):
        clock.now = 10.0 + index
        failing.offer(_frame(), 0.1, 0.5, NOW, index)
    failing.stop()
    assert failing.counts() == {"collected": 0, "collection_errors": 4}


def test_a_stuck_store_never_blocks_the_line() -> None:
    release = threading.Event()
    stored = []

    def save(frame) -> None:
        release.wait(10)
        stored.append(frame)

    clock = Clock()
    collector = FrameCollector(save, DataCollection(mode="uncertain", max_per_hour=1000), clock=clock, queue_size=2)
    collector.start()
    for index in range(50):  # returns at once although nothing can be stored
        clock.now = index * 0.01
        collector.offer(_frame(), 0.5, 0.5, NOW, index)
    release.set()
    collector.stop()
    assert 2 <= len(stored) <= 3  # what fitted in the queue (plus the one being stored)
    assert collector.counts()["collected"] == len(stored)
