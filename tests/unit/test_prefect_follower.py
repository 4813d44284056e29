"""The follower thread behind the jobs index poller and the row settler: passes, outages, stop."""

from __future__ import annotations

import logging
import threading

import pytest

from infra.orchestration.client import OrchestrationUnavailable
from infra.orchestration.follower import PrefectFollower


class _Client:
    """Stands in for the Prefect client: the loop only hands it to passes and closes it."""

    closed = False

    def close(self) -> None:
        self.closed = True


class _Follower(PrefectFollower):
    def __init__(self, outcomes: list[BaseException | None], interval_s: float = 0.01,
                 first_pass_at_once: bool = True) -> None:
        self.client = _Client()
        super().__init__("test-follower", lambda: self.client, interval_s=interval_s, retry_s=0.01,
                         first_pass_at_once=first_pass_at_once)
        self.outcomes = outcomes
        self.passes = 0
        self.done = threading.Event()

    def pass_once(self, orchestrator) -> None:
        assert orchestrator is self.client
        self.passes += 1
        if self.passes >= len(self.outcomes):
            self.done.set()
            return
        outcome = self.outcomes[self.passes - 1]
        if outcome is not None:
            raise outcome


def test_an_outage_is_logged_once_and_the_passes_go_on(caplog: pytest.LogCaptureFixture) -> None:
    down = OrchestrationUnavailable("connection refused")
    follower = _Follower([down, down, down, None, ValueError("bad row"), None, None])
    with caplog.at_level(logging.INFO, logger="infra.orchestration.follower"):
        follower.start()
        assert follower.done.wait(10)
        follower.stop()
    messages = [record.getMessage() for record in caplog.records]
    assert sum("cannot read Prefect" in message for message in messages) == 1
    assert sum("answers again" in message for message in messages) == 1
    assert any("pass failed" in message for message in messages)
    assert follower.client.closed


def test_stop_ends_the_thread_before_its_first_pass_when_that_waits() -> None:
    follower = _Follower([None], interval_s=60.0, first_pass_at_once=False)  # like the settler
    follower.start()
    follower.stop()
    assert follower.passes == 0 and follower.client.closed


def test_wake_starts_the_next_pass_at_once() -> None:
    follower = _Follower([None, None, None], interval_s=60.0)
    follower.start()
    try:
        _wait(lambda: follower.passes == 1)  # the first pass runs at once; the next one would wait a minute
        follower.wake()
        _wait(lambda: follower.passes == 2)
    finally:
        follower.stop()


def _wait(condition, timeout_s: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "not within the timeout"
        time.sleep(0.01)
