"""The jobs index poller reads Prefect slowly while Prefect's event stream is quiet, fast otherwise."""

from __future__ import annotations

from infra.orchestration import job_poller
from infra.orchestration.job_poller import JobIndexPoller


class _Stream:
    """Stands in for the event stream: `connected` as told; keeps the callback to play events."""

    def __init__(self, on_event) -> None:
        self.on_event = on_event
        self.connected = True
        self.started = self.stopped = False

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True


class _Leadership:
    def __init__(self, leads: bool) -> None:
        self.is_leader = leads


def _poller(**kwargs) -> JobIndexPoller:
    return JobIndexPoller(lambda: None, None, interval_s=1.0, idle_interval_s=10.0, **kwargs)  # type: ignore[arg-type]


def test_without_a_stream_it_polls_at_its_interval() -> None:
    assert _poller().next_delay() == 1.0


def test_a_quiet_stream_slows_it_down_and_an_event_speeds_it_up_for_a_while(monkeypatch) -> None:
    poller = _poller(events=_Stream)
    stream = poller.events
    assert poller.next_delay() == 10.0

    clock = [1000.0]
    monkeypatch.setattr(job_poller.time, "monotonic", lambda: clock[0])
    stream.on_event(object())
    assert poller._wake.is_set(), "an event starts a pass at once"  # noqa: SLF001
    assert poller.next_delay() == 1.0, "the event may precede its commit: read again soon"
    clock[0] += job_poller.FAST_AFTER_EVENT_S + 0.1
    assert poller.next_delay() == 10.0

    stream.connected = False
    assert poller.next_delay() == 1.0, "a stream that is down wakes no one"


def test_a_standby_asks_for_the_lead_at_the_fast_interval() -> None:
    assert _poller(events=_Stream, leadership=_Leadership(False)).next_delay() == 1.0
    assert _poller(events=_Stream, leadership=_Leadership(True)).next_delay() == 10.0


def test_the_idle_interval_is_never_shorter_than_the_fast_one() -> None:
    assert JobIndexPoller(lambda: None, None, interval_s=20.0, events=_Stream).next_delay() == 20.0  # type: ignore[arg-type]
