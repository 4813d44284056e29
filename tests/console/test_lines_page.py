"""The lines pages in Chromium on the session platform (real Prefect, the `inference` worker): a line made
through the form on a video file (a bad field first: its message, nothing written), started, watched live
(WebRTC frames decoded, metrics moving), its threshold moved with the slider and applied to the running
line, a capture, and a stop."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from infra.database.models import LIVE_STATUSES
from infra.model_files import openvino_prefix, upload_folder
from tests.console.conftest import BrowserPage, checked_page
from tests.integration.pipeline_support import insert_model
from tests.platform_fixtures import wait_for

pytestmark = pytest.mark.slow

START_TIMEOUT_MS = 90_000  # worker poll + flow process start + model compile, on 2 busy cores


@pytest.fixture
def lines_view(browser: Any, platform_api_url: str) -> Iterator[BrowserPage]:
    """A page on the platform's API process (no key: no sign-in); at the end, nothing off loopback, no script error."""
    with checked_page(browser, platform_api_url) as view:
        yield view


@pytest.fixture
def line_project(platform_client: TestClient, model_dir: Path) -> Iterator[dict]:
    """A project with one ready model whose OpenVINO IR is in the platform's object store. Its lines are stopped
    at the end: a test that fails half-way would otherwise leave one running on the session platform (it once
    took 144 CPU-seconds from the rest of the suite)."""
    project = platform_client.post("/api/projects", json={"name": f"Lines {uuid.uuid4().hex[:6]}"}).json()
    model_id = insert_model(platform_client, project["id"], name="PaDiM line model")
    xml = next(model_dir.rglob("model.xml"))
    assert upload_folder(platform_client.app.state.store, xml.parent, openvino_prefix(model_id))
    yield {"project": project, "model_id": model_id}
    for line in platform_client.get(f"/api/projects/{project['id']}/pipelines").json():
        for active in platform_client.get("/api/active-pipelines", params={"pipeline_id": line["id"]}).json():
            if active["status"] in LIVE_STATUSES:
                platform_client.delete(f"/api/active-pipelines/{active['id']}")


def _field_error(page: Any, name: str) -> str:
    return page.locator(f"#{name}-error").inner_text()


def _metric(page: Any, name: str) -> int:
    return int(re.sub(r"[^0-9]", "", page.locator(f'[data-metric="{name}"]').inner_text()) or 0)


def test_a_line_is_made_started_watched_tuned_captured_and_stopped(
        browser: Any, lines_view: BrowserPage, platform_client: TestClient, line_project: dict, part_video: Path,
        webhook_receiver: Any) -> None:
    client, page = platform_client, lines_view.page
    project_id = line_project["project"]["id"]
    lines_view.goto(f"/ui/projects/{project_id}/lines")
    page.get_by_role("link", name="New line").click()

    page.get_by_label("Name").fill("Gate camera")
    page.get_by_label("Source").select_option("video_file")
    page.get_by_label("Where to read it").fill(str(part_video))
    page.get_by_label("Model").select_option(line_project["model_id"])
    page.get_by_label("Threshold").fill("0.5")
    page.get_by_label("Frames per second (at most)").fill("500")  # above the API's limit of 120
    page.get_by_label("Sink").select_option("webhook")
    page.get_by_label("Address").fill(webhook_receiver.url)
    lines_view.record.expect_error(r"status of 422")
    page.get_by_role("button", name="Create line").click()
    assert "less than or equal to 120" in _field_error(page, "fps")
    assert page.get_by_label("Frames per second (at most)").get_attribute("aria-invalid") == "true"
    assert page.get_by_label("Where to read it").input_value() == str(part_video)  # kept as typed
    for resource in ("pipelines", "sources", "sinks"):  # nothing half-written
        assert client.get(f"/api/projects/{project_id}/{resource}").json() == []

    page.get_by_label("Frames per second (at most)").fill("8")
    with page.expect_navigation():
        page.get_by_role("button", name="Create line").click()
    [line] = client.get(f"/api/projects/{project_id}/pipelines").json()
    assert page.url.endswith(f"/ui/projects/{project_id}/lines/{line['id']}")
    assert line["name"] == "Gate camera" and line["model_id"] == line_project["model_id"]
    assert line["config"]["fps"] == 8.0 and line["config"]["threshold"] == 0.5
    source = client.get(f"/api/sources/{line['source_id']}").json()
    assert source["type"] == "video_file" and source["config"]["path"] == str(part_video)

    with page.expect_navigation():
        page.get_by_role("button", name="▶ Start").click()
    # Live frames in the <video> and metrics that move, without reloading the page.
    page.wait_for_function("() => Number(document.getElementById('frames-decoded').textContent) > 0",
                           timeout=START_TIMEOUT_MS)
    first = _metric(page, "frames_processed")
    page.wait_for_function(f"() => Number(document.getElementById('line').dataset.frames) > {first}", timeout=15_000)
    assert "running" in page.locator("#line-state").inner_text()
    assert page.locator("#chart-scores").get_attribute("points")  # the recent-score chart is drawn
    active = client.get("/api/active-pipelines", params={"pipeline_id": line["id"]}).json()[0]
    assert active["status"] == "running" and active["metrics"]["recent_scores"]

    # The slider applies to the running line through the API's live config update.
    page.locator("#threshold").fill("0.2")
    wait_for(lambda: client.get(f"/api/pipelines/{line['id']}").json()["config"]["threshold"] == 0.2, 10,
             what="the slider's threshold in the line's config")
    page.wait_for_function("() => document.getElementById('threshold-note').textContent.includes('applied')")

    page.get_by_role("button", name="Capture the current frame").click()
    shot = page.locator("#capture-shot img")
    shot.wait_for(timeout=15_000)
    assert page.evaluate("() => document.querySelector('#capture-shot img').complete && "
                         "document.querySelector('#capture-shot img').naturalWidth > 0")

    # The same controls as plain forms, before (here: without) any script.
    with checked_page(browser, lines_view.base_url, javascript=False) as plain:
        plain.goto(f"/ui/projects/{project_id}/lines/{line['id']}")
        plain.page.locator("#threshold").fill("0.35")
        plain.page.get_by_role("button", name="Apply").click()
        assert client.get(f"/api/pipelines/{line['id']}").json()["config"]["threshold"] == 0.35
        with plain.page.expect_navigation():  # to the page's load event: the shot has loaded by then
            plain.page.get_by_role("button", name="Capture the current frame").click()
        assert "?capture=" in plain.page.url
        assert plain.page.locator("#capture-shot img").evaluate("image => image.naturalWidth") > 0

    with page.expect_navigation():
        page.get_by_role("button", name="■ Stop").click()
    wait_for(lambda: client.get(f"/api/active-pipelines/{active['id']}").json()["status"] == "stopped", 30,
             what="the line to stop")
    lines_view.goto(f"/ui/projects/{project_id}/lines")
    row = page.locator(f'tr[data-line-id="{line["id"]}"]')
    assert "stopped" in row.locator('[data-field="state"]').inner_text()
    assert row.get_by_role("button", name="▶ Start").count() == 1
