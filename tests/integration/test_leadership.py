"""One leader per PostgreSQL database (advisory lock on a connection of its own); SQLite's one process leads."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from infra.database.leadership import Leadership, lock_key, migration_lock
from tests.integration.databases import fresh_postgres_database, sqlite_url
from tests.platform_fixtures import wait_for


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.mark.postgres
def test_exactly_one_leads_and_the_lead_passes_on_when_the_leader_goes():
    with fresh_postgres_database() as url:
        first, second = Leadership(url, "jobs-index"), Leadership(url, "jobs-index")
        other_job = Leadership(url, "another-job")
        try:
            assert first.held() and not second.held() and not second.is_leader
            assert first.held(), "the leader keeps the lead"
            assert other_job.held(), "leads of different jobs are independent"
            first.release()
            assert second.held() and not first.held()
            # The leader's connection is cut (killed process, database restart): it learns it at its next check.
            # Only this test's database: other API processes on the same server hold the same key in theirs.
            with psycopg.connect(_libpq(url), autocommit=True) as admin:
                killed = admin.execute("SELECT pid, pg_terminate_backend(pid) FROM pg_locks WHERE locktype = "
                                       "'advisory' AND objid = %s AND database = (SELECT oid FROM pg_database "
                                       "WHERE datname = current_database())",
                                       [lock_key("jobs-index") & 0xFFFFFFFF]).fetchall()
                assert [signalled for _, signalled in killed] == [True]
                # pg_terminate_backend only signals: the lock goes when that backend has exited.
                wait_for(lambda: not admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s",
                                                   [killed[0][0]]).fetchall(), 10, what="the cut backend to exit")
            assert first.held(), "the lock went with the cut connection"
            assert not second.held() and not second.is_leader, "the cut leader learns it at its next check"
        finally:
            for leadership in (first, second, other_job):
                leadership.release()


def test_on_sqlite_the_one_process_always_leads(tmp_path: Path):
    leadership = Leadership(sqlite_url(tmp_path), "jobs-index")
    assert leadership.held() and leadership.is_leader


@pytest.mark.postgres
def test_migrations_wait_for_the_replica_that_migrates():
    with fresh_postgres_database() as url:
        entered = threading.Event()

        def upgrade_elsewhere() -> None:
            with migration_lock(url):
                entered.set()

        with migration_lock(url):
            waiter = threading.Thread(target=upgrade_elsewhere, daemon=True)
            waiter.start()
            assert not entered.wait(1.0), "a second replica must wait while one migrates"
        waiter.join(10)
        assert entered.is_set()
