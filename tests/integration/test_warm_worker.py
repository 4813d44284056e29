"""The warm worker hands flow runs to a spare process that already imported the pool's flows.

Real Prefect server and worker (the session platform); the jobs are snapshots, the quickest flow.
"""

from __future__ import annotations

import psutil
import pytest

from infra.orchestration.setup import pool_modules
from infra.orchestration.warm_worker import waiting_spares
from tests.conftest import png_bytes
from tests.integration.media_support import upload
from tests.platform_fixtures import wait_for, wait_job


@pytest.fixture(scope="module")
def small_project(platform_client) -> dict:
    project = platform_client.post("/api/projects", json={"name": "warm worker"}).json()
    images = [(f"part{index}.png", png_bytes(color=(index, 120, 40))) for index in range(3)]
    assert upload(platform_client, project["id"], images).status_code == 201
    return project


def _spares(platform) -> list[psutil.Process]:
    return waiting_spares(platform.stack.workers["training"].pid)


def _snapshot_job(client, project_id: str) -> dict:
    created = client.post(f"/api/projects/{project_id}/snapshots", json={"name": "warm"})
    assert created.status_code == 201, created.text
    return wait_job(client, created.json()["job_id"], {"completed", "failed", "cancelled"}, timeout=120)


def test_pool_modules_come_from_prefect_yaml() -> None:
    assert pool_modules("training") == ["flows.snapshot", "flows.training.flow", "flows.export", "flows.retraining"]
    assert pool_modules("inference") == ["flows.inference"]
    assert pool_modules("no-such-pool") == []


def test_a_job_runs_in_the_waiting_spare_and_a_new_spare_follows(platform, platform_client, small_project) -> None:
    (spare,) = wait_for(lambda: _spares(platform), 120, what="a spare engine process")
    assert "flows.training.flow" in spare.cmdline()

    job = _snapshot_job(platform_client, small_project["id"])

    assert job["status"] == "completed", job
    # The spare ran the job (it only ever exits after a run, or when the worker stops) ...
    wait_for(lambda: not spare.is_running() or spare.status() == psutil.STATUS_ZOMBIE, 30, what="the used spare to end")
    # ... and its replacement is waiting for the next one.
    (replacement,) = wait_for(lambda: _spares(platform), 60, what="a replacement spare")
    assert replacement.pid != spare.pid


def test_a_job_still_runs_when_the_spare_died(platform, platform_client, small_project) -> None:
    (spare,) = wait_for(lambda: _spares(platform), 120, what="a spare engine process")
    spare.kill()
    spare.wait(10)

    job = _snapshot_job(platform_client, small_project["id"])

    assert job["status"] == "completed", job
    assert job["progress"] == 1.0
