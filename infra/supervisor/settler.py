"""Periodically settle rows whose job ended without them (e.g. a worker killed mid-training)."""

from __future__ import annotations

import logging
import threading

from infra.database.engine import session_scope
from infra.orchestration import OrchestrationUnavailable, Orchestrator
from infra.orchestration.reconcile import settle_all
from infra.settings import Settings

log = logging.getLogger(__name__)


class RowSettler:
    def __init__(self, settings: Settings, interval_s: float = 15.0) -> None:
        self.settings = settings
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-row-settler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        orchestrator = Orchestrator.from_settings(self.settings)
        try:
            while not self._stop.wait(self.interval_s):
                try:
                    with session_scope(self.settings.resolved_database_url) as session:
                        settle_all(session, orchestrator)
                except OrchestrationUnavailable as error:
                    log.warning("cannot settle job rows: %s", error)
                except Exception:  # noqa: BLE001 - keep settling on the next round
                    log.exception("settling job rows failed")
        finally:
            orchestrator.close()
