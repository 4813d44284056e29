"""The schedule page in Chromium on the session platform (real Prefect, the `retraining` deployment): a bad
cron gets its message and nothing is saved; a good one reads in words with its next three runs in the
browser's time zone; "run now" starts a retraining whose decision shows in the history without a reload."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from tests.console.conftest import BrowserPage, checked_page

pytestmark = pytest.mark.slow

BROWSER_ZONE = "America/New_York"  # not the schedule's zone: the page must convert


@pytest.fixture
def schedule_view(browser: Any, platform_api_url: str) -> Iterator[BrowserPage]:
    """A page in a browser set to New York time on the platform's API process (no key: no sign-in)."""
    with checked_page(browser, platform_api_url, timezone_id=BROWSER_ZONE) as view:
        yield view


def test_a_schedule_is_saved_read_in_words_run_now_and_its_decision_shown(
        schedule_view: BrowserPage, platform_client: TestClient) -> None:
    client, page = platform_client, schedule_view.page
    project = client.post("/api/projects", json={"name": f"Nightly {uuid.uuid4().hex[:6]}"}).json()
    schedule_view.goto(f"/ui/projects/{project['id']}/schedule")
    assert "No schedule yet" in page.locator("#cron-words").inner_text()
    assert page.get_by_role("button", name="▶ Run now").count() == 0

    page.get_by_label("Cron").fill("0 25 * * *")  # no hour 25
    page.get_by_label("Time zone").fill("Europe/Berlin")
    schedule_view.record.expect_error(r"status of 422")
    page.get_by_role("button", name="Save schedule").click()
    assert page.locator("#cron-error").inner_text().strip()
    assert page.get_by_label("Cron").get_attribute("aria-invalid") == "true"
    assert client.get(f"/api/projects/{project['id']}/training-schedule").status_code == 404  # nothing saved

    page.get_by_label("Cron").fill("30 2 * * 1-5")
    # The project has no images: the run skips at once (the decision this test waits for).
    page.get_by_label("New images needed").fill("0")
    with page.expect_navigation():
        page.get_by_role("button", name="Save schedule").click()
    saved = client.get(f"/api/projects/{project['id']}/training-schedule").json()
    assert saved["cron"] == "30 2 * * 1-5" and saved["timezone"] == "Europe/Berlin" and saved["active"] is True
    assert page.locator("#cron-words").inner_text() == "At 02:30, Monday through Friday"
    runs = page.locator("#next-runs time")
    assert runs.count() == 3
    # Shown in the browser's zone: 02:30 in Berlin is 20:30 (or 21:30) the evening before in New York.
    for index, expected in enumerate(saved["next_runs"]):
        local = datetime.fromisoformat(expected.replace("Z", "+00:00")).astimezone(ZoneInfo(BROWSER_ZONE))
        assert runs.nth(index).get_attribute("datetime") == expected
        assert local.strftime("%-I:%M") in runs.nth(index).inner_text()

    with page.expect_navigation():
        page.get_by_role("button", name="▶ Run now").click()
    row = page.locator("#history tr[data-job-id]").first
    job_id = row.get_attribute("data-job-id")
    page.wait_for_function("() => document.querySelector('#history tr[data-job-id]').dataset.status === 'completed'",
                           timeout=90_000)
    assert "skipped" in row.locator('[data-field="decision"]').inner_text()
    assert "normal training images" in row.locator('[data-field="reason"]').inner_text()
    job = client.get(f"/api/jobs/{job_id}").json()
    assert job["type"] == "retraining" and job["metrics"]["decision"] == "skipped"
