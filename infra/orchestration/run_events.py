"""Wake-ups from Prefect's event stream: some flow run changed state.

Asking Prefect every second whether something changed was most of an idle stack's CPU (issue 20,
section 5: each answer is a request and SQLite queries in Prefect's server, and a worker's poll also
queues two background writes there). Prefect streams its events over a websocket
(`/api/events/out`); a run's state event reached a subscriber 35-75 ms after the change, and three idle
subscribers cost the server nothing measurable (this machine). So the job index poller and the
workers read Prefect when an event wakes them, poll slowly as a safety net, and poll at their fast
interval while the stream is down (`connected` is False).

The server emits a state event inside the transaction that makes the change: a read right after the
event can miss it. Followers read once more a moment later (each says how).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable

from prefect.events import Event
from prefect.events.clients import PrefectEventSubscriber
from prefect.events.filters import EventFilter, EventNameFilter
from prefect.settings import PREFECT_API_AUTH_STRING, temporary_settings

log = logging.getLogger(__name__)

STATE_EVENTS = "prefect.flow-run."  # prefect.flow-run.Scheduled, .Pending, .Running, .Completed, ...
HEARTBEAT_EVENT = "prefect.flow-run.heartbeat"  # every 30 s per running flow: not a change
RETRY_S = 5.0  # between attempts to (re)connect


def run_state_filter() -> EventFilter:
    return EventFilter(event=EventNameFilter(prefix=[STATE_EVENTS], exclude_prefix=[HEARTBEAT_EVENT]))


async def follow_run_events(on_event: Callable[[Event], None], on_connected: Callable[[bool], None], *,
                            api_url: str | None = None, auth_string: str | None = None, name: str = "run events"
                            ) -> None:
    """Call `on_event` for each flow-run state event, forever; `on_connected` says when the stream is up or down.

    `api_url` / `auth_string`: the Prefect API and its credentials (default: this process's Prefect settings).
    """
    failing = False
    while True:
        try:
            with temporary_settings(updates={PREFECT_API_AUTH_STRING: auth_string}) if auth_string else \
                    contextlib.nullcontext():
                subscriber = PrefectEventSubscriber(api_url=api_url, filter=run_state_filter(),
                                                    reconnection_attempts=1)
            async with subscriber:
                if failing:
                    log.info("%s: Prefect's event stream answers again", name)
                failing = False
                on_connected(True)
                async for event in subscriber:
                    on_event(event)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - any failure: poll fast, try again later
            if not failing:
                log.warning("%s: no Prefect event stream (polling at the fast interval; retrying every %.0f s): %s",
                            name, RETRY_S, error)
            failing = True
        finally:
            on_connected(False)
        await asyncio.sleep(RETRY_S)


class RunEventsThread:
    """`follow_run_events` on a daemon thread with its own event loop, for threaded followers."""

    def __init__(self, on_event: Callable[[Event], None], *, api_url: str, auth_string: str | None,
                 name: str) -> None:
        self._on_event = on_event
        self._api_url = api_url
        self._auth_string = auth_string
        self._name = name
        self.connected = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _set_connected(self, connected: bool) -> None:
        self.connected = connected

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.current_task()  # type: ignore[assignment]
            self._started.set()
            await follow_run_events(self._on_event, self._set_connected, api_url=self._api_url,
                                    auth_string=self._auth_string, name=self._name)

        with contextlib.suppress(asyncio.CancelledError):
            asyncio.run(main())

    def start(self) -> None:
        self._thread.start()
        self._started.wait(timeout=10)

    def stop(self) -> None:
        if self._loop is not None and self._task is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(timeout=10)
