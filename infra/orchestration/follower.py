"""A daemon thread that follows Prefect: one pass per interval, with a Prefect client of its own.

The jobs index poller (job_poller.py) and `serve`'s row settler (supervisor/settler.py) are such
threads. An unreachable Prefect is logged once, and again when it answers; any other failure is
logged with its traceback. Either way the thread goes on after `retry_s`. `wake()` starts the next
pass at once (the job index poller is woken by Prefect's run events); `next_delay()` may vary the interval.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable

from infra.orchestration.client import OrchestrationUnavailable, Orchestrator

log = logging.getLogger(__name__)


class PrefectFollower(ABC):
    def __init__(self, name: str, new_orchestrator: Callable[[], Orchestrator], interval_s: float,
                 retry_s: float, first_pass_at_once: bool) -> None:
        self.name = name
        self.interval_s = interval_s
        self.retry_s = retry_s
        self._new_orchestrator = new_orchestrator
        self._first_delay = 0.0 if first_pass_at_once else interval_s
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by stop() too, so a wait ends at once
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @abstractmethod
    def pass_once(self, orchestrator: Orchestrator) -> None: ...

    def next_delay(self) -> float:
        """Seconds from a successful pass to the next one, unless woken."""
        return self.interval_s

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        orchestrator = self._new_orchestrator()
        unreachable = False
        try:
            delay = self._first_delay
            while True:
                self._wake.wait(delay)
                if self._stop.is_set():
                    break
                self._wake.clear()
                try:
                    self.pass_once(orchestrator)
                    if unreachable:
                        log.info("%s: Prefect answers again", self.name)
                    unreachable, delay = False, self.next_delay()
                except OrchestrationUnavailable as error:
                    if not unreachable:
                        log.warning("%s: cannot read Prefect (retrying every %.0f s): %s", self.name, self.retry_s,
                                    error)
                    unreachable, delay = True, self.retry_s
                except Exception:  # noqa: BLE001 - go on with the next pass
                    log.exception("%s: pass failed", self.name)
                    delay = self.retry_s
        finally:
            orchestrator.close()
