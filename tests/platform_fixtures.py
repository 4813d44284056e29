"""One real platform for the whole test session: Prefect server + workers + MLflow server.

Started once (about 20 s) through the same `Stack` that `geti-inspect serve` uses, on free ports
and a temporary data dir. The workers' flow processes read the database and storage of
`platform.settings`, so tests that run jobs must use `platform_client` (an app on those settings).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from infra.settings import Settings
from infra.supervisor import Stack, StackOptions
from tests.network import free_port

# Crash detection needs heartbeats (every 30 s at least); 60 s of silence keeps the crash test short.
TEST_STACK = StackOptions(crash_after_s=60)


@dataclass
class Platform:
    settings: Settings
    stack: Stack


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("platform") / "data", prefect_port=free_port(),
                        mlflow_port=free_port(), min_normal_images=4)
    stack = Stack(settings, TEST_STACK)
    stack.start()
    try:
        yield Platform(settings, stack)
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def platform_client(platform: Platform) -> Iterator[TestClient]:
    app = create_app(platform.settings, health_checks=platform.stack.health_checks())
    with TestClient(app) as client:
        yield client


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.5, what: str = "condition") -> object:
    """Poll until `predicate()` is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def wait_job(client: TestClient, job_id: str, statuses: set[str], timeout: float = 120) -> dict:
    def finished() -> dict | None:
        job = client.get(f"/api/jobs/{job_id}").json()
        return job if job.get("status") in statuses else None

    return wait_for(finished, timeout, what=f"job {job_id} to reach {sorted(statuses)}")  # type: ignore[return-value]


def wait_epoch(client: TestClient, job_id: str, timeout: float = 120) -> dict:
    """Wait until a training job runs and has reported an epoch (it is visibly mid-training)."""
    def training() -> dict | None:
        job = client.get(f"/api/jobs/{job_id}").json()
        assert job["status"] in ("pending", "running"), job
        return job if job["status"] == "running" and "epoch" in job["metrics"] else None

    return wait_for(training, timeout, what="training to report an epoch")  # type: ignore[return-value]
