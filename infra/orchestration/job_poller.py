"""Keep the jobs index (job_index.py) in step with Prefect, from a thread of each API process.

A pass runs when Prefect's event stream (run_events.py) says a flow run changed state, then every
`interval_s` (1 s) for `FAST_AFTER_EVENT_S` (the event can precede its commit; a burst of changes
is read once a second), and otherwise every `idle_interval_s` (10 s): the safety net for what sends
no event. While the stream is down, every `interval_s`. Each pass reads the job runs that are not
finished plus those that ended since shortly before the last pass (one paged query), refreshes
index rows that are unsettled but were in neither (they ended unseen, or were deleted), settles the
model and snapshot rows of jobs that ended (`reconcile.settle_rows`), and at most every 10 s
compares Prefect's count of job runs with the index's. The first pass, and any pass after which the
counts differ, *sweeps*: it reads every job run (paged), adds what the index lacks and drops rows
whose run is gone (checked by id first). That is how history from before the index, runs made
while no API ran, and deleted runs are handled.

Of several API processes on one PostgreSQL only the holder of the `jobs-index` lead
(`infra/database/leadership.py`) makes passes; the others ask for the lead every `interval_s` and
read Prefect not at all. A process that gains the lead starts with a sweep (it saw nothing before).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from infra.database.engine import transaction
from infra.database.leadership import Leadership
from infra.orchestration.client import Orchestrator
from infra.orchestration.follower import PrefectFollower
from infra.orchestration.job_index import count_indexed, forget_jobs, indexed_ids, record_jobs, unsettled_ids
from infra.orchestration.jobs import SETTLED_AFTER_S
from infra.orchestration.reconcile import settle_rows

log = logging.getLogger(__name__)

# Each pass re-reads runs that ended this long before the previous pass began: clocks of other
# machines and runs that end while a pass is under way are covered, and a run that ended is read
# again once it is settled.
OVERLAP_S = SETTLED_AFTER_S + 5.0
# Counting is only for what the follow query cannot see (a run deleted in Prefect, a missed one), and
# each count is a Prefect call: every 10 s rather than every pass halves an idle API's Prefect reads.
# A sweep reads everything, so it also restarts this interval: at most one sweep per 10 s.
COUNT_EVERY_S = 10.0
RETRY_S = 5.0  # pause after Prefect did not answer
FAST_AFTER_EVENT_S = 5.0  # passes every `interval_s` for this long after a run's state event
IDLE_INTERVAL_S = COUNT_EVERY_S  # with the event stream up and no event: each pass also counts


class RunEvents(Protocol):
    """What the poller needs of an event stream (run_events.RunEventsThread)."""

    connected: bool

    def start(self) -> None: ...

    def stop(self) -> None: ...


class JobIndexPoller(PrefectFollower):
    def __init__(self, new_orchestrator: Callable[[], Orchestrator], sessions: sessionmaker[Session],
                 interval_s: float = 1.0, leadership: Leadership | None = None,
                 events: Callable[[Callable[[object], None]], RunEvents] | None = None,
                 idle_interval_s: float = IDLE_INTERVAL_S) -> None:
        """`events(on_event)`: the event stream that wakes the poller (None: it polls every `interval_s`)."""
        # Its own Prefect client, like the row settler; the first pass (a sweep) runs at once.
        super().__init__("job-index-poller", new_orchestrator, interval_s, RETRY_S, first_pass_at_once=True)
        self._sessions = sessions
        self.leadership = leadership  # None: this process always leads
        self.idle_interval_s = max(idle_interval_s, interval_s)
        self.events = events(self._on_run_event) if events is not None else None
        self._fast_until = float("-inf")
        self._last_pass: datetime | None = None
        self._last_count = float("-inf")  # a count or a sweep
        self.passes = 0  # completed passes (a sweep counts as one)

    @property
    def leads(self) -> bool:
        return self.leadership is None or self.leadership.is_leader

    def start(self) -> None:
        if self.events is not None:
            self.events.start()
        super().start()

    def _on_run_event(self, _event: object) -> None:
        self._fast_until = time.monotonic() + FAST_AFTER_EVENT_S
        self.wake()

    def next_delay(self) -> float:
        """Fast while the stream is down, after an event, or to ask for the lead; else idle."""
        if self.events is None or not self.events.connected or not self.leads or \
                time.monotonic() < self._fast_until:
            return self.interval_s
        return self.idle_interval_s

    def stop(self) -> None:
        if self.events is not None:
            self.events.stop()
        super().stop()
        if self.leadership is not None:
            self.leadership.release()  # the next process takes over at once, not after a timeout

    def pass_once(self, orchestrator: Orchestrator) -> None:
        if self.leadership is not None and not self.leadership.held():
            self._last_pass = None  # should it lead later, it starts with a sweep
            return
        started = datetime.now(UTC)
        if self._last_pass is None:
            self.sweep(orchestrator)
        else:
            self._follow(orchestrator, started)
        self._last_pass = started
        self.passes += 1

    def _follow(self, orchestrator: Orchestrator, started: datetime) -> None:
        assert self._last_pass is not None
        runs = orchestrator.runs_changed_since(self._last_pass - timedelta(seconds=OVERLAP_S))
        jobs = orchestrator.jobs_of(runs)
        with self._sessions() as session:
            unseen = unsettled_ids(session) - {job.id for job in jobs}
        found = orchestrator.jobs_by_id(unseen) if unseen else {}
        in_prefect = None
        if time.monotonic() - self._last_count >= COUNT_EVERY_S:
            self._last_count = time.monotonic()
            in_prefect = orchestrator.count_job_runs()
        with transaction(self._sessions) as session:
            record_jobs(session, [*jobs, *found.values()], started)
            forget_jobs(session, unseen - set(found))
            settle_rows(session, [*jobs, *found.values()])
            in_index = count_indexed(session) if in_prefect is not None else None
        if in_index != in_prefect:
            log.info("job index: %d rows, Prefect has %d job runs: sweeping", in_index, in_prefect)
            self.sweep(orchestrator)

    def sweep(self, orchestrator: Orchestrator) -> None:
        """Read every job run: add what the index lacks or has unsettled, drop rows whose run is gone."""
        self._last_count = time.monotonic()
        with self._sessions() as session:
            before = indexed_ids(session)
            settled = indexed_ids(session, settled=True)
        seen: set[uuid.UUID] = set()
        read_at = datetime.now(UTC)  # before each page is read: an older read never replaces a newer one
        for page in orchestrator.job_run_pages():
            seen.update(run.id for run in page)
            jobs = orchestrator.jobs_of([run for run in page if run.id not in settled])
            if jobs:
                with transaction(self._sessions) as session:  # page by page: a long history appears as it is read
                    record_jobs(session, jobs, read_at)
                    settle_rows(session, jobs)
            read_at = datetime.now(UTC)
        missing = before - seen
        if missing:  # paging over a changing set can skip a run: only drop what Prefect says is gone
            read_at = datetime.now(UTC)
            found = orchestrator.jobs_by_id(missing)
            with transaction(self._sessions) as session:
                record_jobs(session, found.values(), read_at)
                forget_jobs(session, missing - set(found))
