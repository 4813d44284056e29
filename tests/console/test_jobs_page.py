"""The jobs page in Chromium on the session platform (real Prefect): every project's jobs, live progress of a
running one without reloading, and cancel. The runs are made with Prefect's client, as a flow reports
itself (state and progress artifact), so the test decides when they move."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from prefect import flow

from infra.orchestration.client import prefect_api_url
from tests.console.conftest import BrowserPage, ConsoleServer

pytestmark = pytest.mark.slow


@pytest.fixture
def jobs_view(platform_page: BrowserPage) -> BrowserPage:
    return platform_page


@flow(name="console-test-job")
def console_test_job() -> None:
    return None


@pytest.fixture
def prefect(platform: Any) -> Iterator[Any]:
    """A client of the platform's Prefect, as a flow (or a script) reports through it."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.settings import PREFECT_API_URL, temporary_settings

    api_url = prefect_api_url(platform.settings)
    # The API URL in Prefect's settings too, else creating a run starts a temporary server.
    with temporary_settings({PREFECT_API_URL: api_url}), SyncPrefectClient(api_url) as client:
        yield client


def _run(prefect: Any, project_id: str, job_type: str, state: Any) -> uuid.UUID:
    return prefect.create_flow_run(console_test_job, tags=[f"project:{project_id}", f"job:{job_type}"],
                                   state=state).id


def _progress(prefect: Any, run_id: uuid.UUID, percent: float) -> None:
    from prefect.client.schemas.actions import ArtifactCreate

    prefect.create_artifact(ArtifactCreate(type="progress", data=percent, flow_run_id=run_id))


def test_jobs_show_live_progress_and_cancel(jobs_view: BrowserPage, platform_console: ConsoleServer,
                                            prefect: Any) -> None:
    from datetime import UTC, datetime, timedelta

    from prefect.states import Completed, Running, Scheduled

    with platform_console.api() as api:
        project = api.post("/api/projects", json={"name": f"Jobs {uuid.uuid4().hex[:6]}"}).json()
    running = _run(prefect, project["id"], "training", Running())
    _progress(prefect, running, 30.0)
    # Scheduled far ahead on no deployment: nothing will pick it up before the cancel.
    waiting = _run(prefect, project["id"], "export", Scheduled(scheduled_time=datetime.now(UTC) + timedelta(days=1)))
    page = jobs_view.page
    row = page.locator(f'tr[data-job-id="{running}"]')
    for _ in range(60):  # the jobs index's poller learns runs made outside the API within about a second
        jobs_view.goto("/ui/jobs")
        if row.count() and page.locator(f'tr[data-job-id="{waiting}"]').count():
            break
        page.wait_for_timeout(500)
    assert project["name"] in row.inner_text() and "training" in row.inner_text()
    assert "running" in row.locator('[data-field="status"]').inner_text()
    assert row.locator('[data-field="progress"]').inner_text() == "30 %"
    page.evaluate("window.__samePage = true")

    _progress(prefect, running, 100.0)
    prefect.set_flow_run_state(running, Completed(), force=True)
    done = f"""() => document.querySelector('tr[data-job-id="{running}"]').dataset.status === 'completed'"""
    page.wait_for_function(done, timeout=30_000)
    assert row.locator('[data-field="progress"]').inner_text() == "100 %"
    assert "completed" in row.locator('[data-field="status"]').inner_text()
    assert row.locator("button", has_text="Cancel").count() == 0
    assert page.evaluate("window.__samePage") is True  # updated in place
    links = row.get_by_role("link", name="Prefect run")
    assert links.get_attribute("href").endswith(f"/runs/flow-run/{running}")

    with page.expect_navigation():
        page.locator(f'tr[data-job-id="{waiting}"]').get_by_role("button", name="Cancel").click()
    assert "/ui/jobs" in page.url and "cancel" not in page.url  # redirected back to the list
    with platform_console.api() as api:
        assert api.get(f"/api/jobs/{waiting}").json()["status"] == "cancelled"
    assert "cancelled" in page.locator(f'tr[data-job-id="{waiting}"]').inner_text()
    with platform_console.api() as api:
        listed = api.get("/api/jobs", params={"limit": 200}).json()
    assert {str(running), str(waiting)} <= {job["id"] for job in listed}
