"""API replicas on one PostgreSQL: migrations once, one jobs-index leader, and a handover when it dies.

Two `geti-inspect api` processes start together on a fresh database against the session platform's
Prefect and MLflow, as two hosts behind a load balancer would. While the test holds the migration
lock both wait; released, exactly one migrates. Exactly one reports itself the leader of the jobs
index; killed with SIGKILL, the other takes the lead within 15 s and then keeps the index in step
with Prefect alone: a run made in Prefect after the kill appears in its jobs list.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
from prefect import flow
from sqlalchemy.engine import make_url

from infra.database.leadership import migration_lock
from infra.orchestration.client import prefect_client
from infra.tracking import tracking_uri
from tests.conftest import REPO_ROOT, stop_process
from tests.integration.databases import fresh_postgres_database
from tests.machines import machine_env
from tests.network import free_port
from tests.platform_fixtures import Platform, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(600)]

HANDOVER_LIMIT_S = 15.0
MIGRATED = "database schema migrated"


@flow(name="made-beside-the-replicas")
def outside_job() -> None:
    return None


@contextmanager
def _replica(data_dir: Path, env: dict[str, str]) -> Iterator[tuple[subprocess.Popen, str, Path]]:
    port = free_port()
    data_dir.mkdir(parents=True)
    log_path = data_dir.parent / f"{data_dir.name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "api.cli", "api", "--port", str(port), "--data-dir",
                                    str(data_dir)], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process, f"http://127.0.0.1:{port}/api", log_path
    finally:
        stop_process(process, timeout=15)


def _role(base_url: str) -> str | None:
    try:
        components = httpx.get(f"{base_url}/health", timeout=5).json()["components"]
    except (httpx.HTTPError, ValueError, KeyError):
        return None
    return components["jobs-index"]["detail"].partition(":")[0]


def _waiting_for_migration_lock(database_url: str) -> int:
    libpq = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True) as connection:
        return connection.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                                  ).fetchone()[0]


def test_replicas_migrate_once_and_hand_the_jobs_index_over(tmp_path: Path, platform: Platform):
    with fresh_postgres_database() as database_url, ExitStack() as stack:
        env = machine_env({"INSPECT_DATABASE_URL": database_url,
                           "INSPECT_PREFECT_API_URL": platform.stack.prefect_api_url,
                           "INSPECT_MLFLOW_TRACKING_URI": tracking_uri(platform.settings)})
        with migration_lock(database_url):
            replicas = [stack.enter_context(_replica(tmp_path / name, env)) for name in ("replica-a", "replica-b")]
            wait_for(lambda: _waiting_for_migration_lock(database_url) == 2, 180, 0.5,
                     "both replicas to wait for the migration lock")
        for process, base_url, log_path in replicas:
            wait_for(lambda url=base_url, p=process: _role(url) or p.poll() is not None, 180, 0.5, "the replica")
            assert process.poll() is None, log_path.read_text()[-3000:]
        migrated = [log_path.read_text().count(MIGRATED) for _, _, log_path in replicas]
        assert sorted(migrated) == [0, 1], migrated

        roles = {base_url: _role(base_url) for _, base_url, _ in replicas}
        assert sorted(roles.values()) == ["leader", "standby"], roles
        (leader, leader_url, _), (survivor, survivor_url, _) = sorted(
            replicas, key=lambda replica: roles[replica[1]] != "leader")
        project = httpx.post(f"{survivor_url}/projects", json={"name": "replicas"}, timeout=30).json()["id"]

        leader.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for(lambda: _role(survivor_url) == "leader", HANDOVER_LIMIT_S + 5, 0.2, "the survivor to lead")
        handover_s = time.monotonic() - killed_at
        print(f"jobs index handed over {handover_s:.1f} s after the leader was killed "
              f"(load {os.getloadavg()[0]:.1f})")
        assert handover_s <= HANDOVER_LIMIT_S

        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: platform.stack.prefect_api_url}), \
                prefect_client(platform.stack.prefect_api_url) as prefect:
            run = prefect.create_flow_run(outside_job, tags=[f"project:{project}", "job:snapshot"])
            try:
                def listed() -> bool:
                    jobs = httpx.get(f"{survivor_url}/projects/{project}/jobs", timeout=10).json()
                    return str(run.id) in {job["id"] for job in jobs}

                wait_for(listed, 30, 0.5, "the new leader to index a run made in Prefect")
            finally:
                prefect.delete_flow_run(run.id)
