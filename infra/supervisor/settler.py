"""Periodically settle rows whose job ended without them (e.g. a worker killed mid-training)."""

from __future__ import annotations

from infra.database.engine import session_scope
from infra.orchestration import Orchestrator
from infra.orchestration.follower import PrefectFollower
from infra.orchestration.reconcile import settle_all
from infra.settings import Settings


class RowSettler(PrefectFollower):
    def __init__(self, settings: Settings, interval_s: float = 15.0) -> None:
        super().__init__("job-row-settler", lambda: Orchestrator.from_settings(settings), interval_s,
                         retry_s=interval_s, first_pass_at_once=False)
        self.settings = settings

    def pass_once(self, orchestrator: Orchestrator) -> None:
        with session_scope(self.settings.resolved_database_url) as session:
            settle_all(session, orchestrator)
