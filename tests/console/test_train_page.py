"""The training page in Chromium on the session platform: architectures as cards (automatic selection and the
recommended first, unavailable ones greyed with the reason), the minimum-data rule, a parameter form from
the schema with the API's message next to a bad field, then a real training followed live and cancelled."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.console.conftest import BrowserPage, ConsoleServer
from tests.integration.media_support import part_files

pytestmark = pytest.mark.slow

NORMAL_IMAGES = 8


@pytest.fixture(scope="module")
def train_project(platform_console: ConsoleServer, part_images: Path) -> dict:
    with platform_console.api() as api:
        project = api.post("/api/projects", json={"name": f"Train {uuid.uuid4().hex[:6]}"}).json()
        files = [("files", (name, data, "image/jpeg")) for name, data in part_files(part_images, "Free", NORMAL_IMAGES)]
        assert api.post(f"/api/projects/{project['id']}/media", data={"label": "normal"}, files=files
                        ).status_code == 201
        # The catalog imports anomalib once per process (~10 s here), which `serve` does while it starts.
        assert api.get("/api/trainable-models", timeout=300).status_code == 200
    return project


def test_choose_parameters_train_follow_and_cancel(platform_page: BrowserPage, train_project: dict,
                                                   platform_console: ConsoleServer) -> None:
    page, project_id = platform_page.page, train_project["id"]
    platform_page.goto(f"/ui/projects/{project_id}/models")
    page.get_by_role("link", name="Train a model…").click()
    page.wait_for_url(f"**/ui/projects/{project_id}/train")

    cards = page.locator(".arch-card")
    names = cards.evaluate_all("(cards) => cards.map((card) => card.dataset.architecture)")
    recommended = cards.evaluate_all("(cards) => cards.map((card) => !!card.querySelector('.recommended'))")
    available = cards.evaluate_all("(cards) => cards.map((card) => !card.classList.contains('unavailable'))")
    assert names[0] == "auto" and set(names[1:3]) == {"padim", "patchcore"}
    assert recommended[:3] == [True, True, True] and not any(recommended[3:])
    assert available == sorted(available, reverse=True)  # the unavailable ones come last
    unavailable = page.locator('.arch-card[data-architecture="efficientad"]')
    assert "Unavailable: Not available offline" in unavailable.inner_text()
    assert unavailable.get_by_role("link").count() == 0
    assert "Speed: fast" in page.locator('.arch-card[data-architecture="padim"]').inner_text()
    assert "at least 4 normal images" in page.locator("#data-rule").inner_text()
    assert f"{NORMAL_IMAGES}" in page.locator("#data-rule").inner_text()

    # STFPM trains for epochs: its form comes from its schema; a layer the backbone lacks is refused by the API
    # and the message shows next to that field.
    page.locator('.arch-card[data-architecture="stfpm"]').get_by_role("link").click()
    page.wait_for_url("**architecture=stfpm")
    assert page.get_by_label("backbone").input_value() == "mobilenetv2_100"
    platform_page.record.expect_error("422")
    page.get_by_label("layers").fill("blocks.2, nope")
    with page.expect_navigation():
        page.get_by_role("button", name="Start training").click()
    assert page.get_by_label("layers").get_attribute("aria-invalid") == "true"
    assert "has no layer(s) nope" in page.locator('[id="p.layers-error"]').inner_text()

    page.get_by_label("layers").fill("blocks.2, blocks.4")
    page.get_by_label("max_epochs").fill("300")
    page.get_by_label("Model name").fill("stfpm from the console")
    with page.expect_navigation():
        page.get_by_role("button", name="Start training").click()
    assert "?job=" in page.url
    job_id = page.locator("#training").get_attribute("data-job-id")
    page.evaluate("window.__samePage = true")
    # Live progress without a reload: running, at some epoch, a percentage above zero.
    page.wait_for_function("() => document.getElementById('training').dataset.status === 'running' && "
                           "document.getElementById('training-stage').textContent.includes('epoch')", timeout=180_000)
    assert int(page.locator("#training-percent").inner_text().split()[0]) > 0
    assert page.evaluate("window.__samePage") is True

    with page.expect_navigation():
        page.get_by_role("button", name="Cancel training").click()
    page.wait_for_function("() => document.getElementById('training').dataset.status === 'cancelled'",
                           timeout=60_000)
    with platform_console.api() as api:
        assert api.get(f"/api/jobs/{job_id}").json()["status"] == "cancelled"
        models = api.get(f"/api/projects/{project_id}/models").json()
    assert [(model["name"], model["status"], model["error"]) for model in models] == [
        ("stfpm from the console", "failed", "cancelled")]
