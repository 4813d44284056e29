"""The whole loop in one browser session, as a quality engineer walks it (issue 17's journey).

Create a project → upload normal and anomalous images → train from the training page and follow its
progress → promote the model → make a line on a video file that follows the champion and collects
`uncertain` frames → watch live frames and metrics → the collected frames wait in the review queue →
judge them with the keyboard → the API shows the new labels. Every step goes through the pages (forms,
buttons, keys); the API is only read, to check what the pages stored. Real Prefect, worker, MLflow and
inference flow (the session platform); the video file stands in for a camera.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.console.conftest import BrowserPage, ConsoleServer
from tests.integration.media_support import part_files
from tests.machines import FAST_TRAINING
from tests.platform_fixtures import wait_for

pytestmark = pytest.mark.slow

TRAIN_TIMEOUT_MS = 300_000  # snapshot + fit + export + MLflow on 2 busy cores
START_TIMEOUT_MS = 90_000  # worker poll + flow process start + model compile


def _upload(page: Any, label: str, files: list[tuple[str, bytes]]) -> None:
    page.evaluate("() => document.getElementById('upload-form').removeAttribute('data-state')")
    page.get_by_label(label, exact=True).check()
    page.set_input_files("#files", [{"name": name, "mimeType": "image/jpeg", "buffer": data} for name, data in files])
    page.get_by_role("button", name="Upload").click()
    page.wait_for_selector('#upload-form[data-state="done"]')
    assert page.locator('#upload-progress li[data-state="stored"]').count() == len(files)


def _tab(page: Any, name: str) -> None:
    """Open one of the project's tabs (its navigation bar, on every project page)."""
    with page.expect_navigation():
        page.get_by_role("navigation", name="Project").get_by_role("link", name=name).click()


def _metric(page: Any, name: str) -> int:
    return int(re.sub(r"[^0-9]", "", page.locator(f'[data-metric="{name}"]').inner_text()) or 0)


def test_a_quality_engineer_walks_the_whole_loop_in_the_console(
        platform_page: BrowserPage, platform_console: ConsoleServer, part_images: Path, part_video: Path,
        webhook_receiver: Any) -> None:
    started = time.monotonic()
    view, page = platform_page, platform_page.page
    api = platform_console.api()
    # The catalog imports anomalib once per process (~10 s here), which `serve` does while it starts.
    assert api.get("/api/trainable-models", timeout=300).status_code == 200

    # 1. A project, made with the projects page's form.
    view.goto("/ui/")
    page.get_by_label("New project").fill("Gate castings")
    page.get_by_role("button", name="Create project").click()
    page.wait_for_url("**/ui/projects/*")
    project_id = page.url.rsplit("/", 1)[-1]

    # 2. Normal and anomalous images through the upload form.
    _upload(page, "normal", part_files(part_images, "Free", 10))
    _upload(page, "anomalous", part_files(part_images, "Crack", 3))
    totals = [api.get(f"/api/projects/{project_id}/media", params={"label": label}).json()["total"]
              for label in ("normal", "anomalous")]
    assert totals == [10, 3]

    # 3. Train from the training page (PaDiM on the light backbone), following its progress live.
    _tab(page, "Models")
    page.get_by_role("link", name="Train a model…").click()
    page.locator('.arch-card[data-architecture="padim"]').get_by_role("link").click()
    page.wait_for_url("**architecture=padim")
    page.get_by_label("backbone").select_option(FAST_TRAINING["parameters"]["backbone"])
    page.get_by_label("layers").fill(", ".join(FAST_TRAINING["parameters"]["layers"]))
    page.get_by_label("Model name").fill("Gate PaDiM")
    with page.expect_navigation():
        page.get_by_role("button", name="Start training").click()
    page.evaluate("window.__samePage = true")
    page.wait_for_function("() => document.getElementById('training').dataset.status === 'running'",
                           timeout=TRAIN_TIMEOUT_MS)
    page.wait_for_function("() => document.getElementById('training').dataset.status === 'completed'",
                           timeout=TRAIN_TIMEOUT_MS)
    assert page.evaluate("window.__samePage") is True  # progress came without a reload
    assert page.locator("#training-percent").inner_text().startswith("100")

    # 4. Promote it on the models page.
    _tab(page, "Models")
    [model] = api.get(f"/api/projects/{project_id}/models").json()
    assert (model["name"], model["status"]) == ("Gate PaDiM", "ready")
    row = page.locator(f'tr[data-model-id="{model["id"]}"]')
    with page.expect_navigation():
        row.get_by_role("button", name="Promote").click()
    assert "champion" in page.locator(f'tr[data-model-id="{model["id"]}"] [data-field="champion"]').inner_text()
    assert api.get(f"/api/models/{model['id']}").json()["champion"] is True

    # 5. A line on a video file that follows the champion and collects every frame for review (the band
    #    spans all scores, so the journey does not depend on where this model's scores fall).
    _tab(page, "Lines")
    page.get_by_role("link", name="New line").click()
    page.get_by_label("Name").fill("Gate camera")
    page.get_by_label("Source").select_option("video_file")
    page.get_by_label("Where to read it").fill(str(part_video))
    page.get_by_label("Model").select_option("champion")
    page.get_by_label("Threshold").fill("model")
    page.get_by_label("Frames per second (at most)").fill("8")
    page.get_by_label("Data collection").select_option("uncertain")
    page.get_by_label("Review band").fill("0-1")
    page.get_by_label("Sink").select_option("webhook")
    page.get_by_label("Address").fill(webhook_receiver.url)
    with page.expect_navigation():
        page.get_by_role("button", name="Create line").click()
    [line] = api.get(f"/api/projects/{project_id}/pipelines").json()
    assert line["follow_champion"] is True and line["model_id"] == model["id"]
    assert line["config"]["data_collection"] == {**line["config"]["data_collection"], "mode": "uncertain",
                                                 "band": [0.0, 1.0]}

    # 6. Start it and watch: live frames in the <video>, metrics moving, frames collected.
    with page.expect_navigation():
        page.get_by_role("button", name="▶ Start").click()
    page.wait_for_function("() => Number(document.getElementById('frames-decoded').textContent) > 0",
                           timeout=START_TIMEOUT_MS)
    page.wait_for_function("() => Number(document.querySelector('[data-metric=\"collected\"]')"
                           ".textContent.replace(/[^0-9]/g, '')) >= 3", timeout=60_000)
    assert _metric(page, "frames_processed") > 0
    with page.expect_navigation():
        page.get_by_role("button", name="■ Stop").click()
    wait_for(lambda: all(run["status"] == "stopped" for run in api.get(
        "/api/active-pipelines", params={"pipeline_id": line["id"]}).json()), 30, what="the line to stop")
    queue = api.get(f"/api/projects/{project_id}/media", params={"label": "unlabelled", "limit": 200}).json()
    assert queue["total"] >= 3
    assert all(item["origin"] == "collected" and item["pipeline_id"] == line["id"] for item in queue["items"])

    # 7. The review queue shows them; the keyboard judges the first two, each stored at once.
    _tab(page, "Review queue")
    page.locator("#review[data-ready]").wait_for(state="attached")  # the queue's script has its items
    total = int(page.locator("#remaining").inner_text().replace(",", ""))
    assert total == queue["total"]
    first = page.locator("#review-media-id").input_value()
    page.keyboard.press("a")
    page.wait_for_function("(id) => document.getElementById('review-media-id').value !== id", arg=first)
    second = page.locator("#review-media-id").input_value()
    page.keyboard.press("n")
    page.wait_for_function(f"() => document.getElementById('remaining').textContent.replace(',', '') === "
                           f"'{total - 2}'")

    # 8. The API shows the verdicts.
    labels = {item["id"]: item["label"] for item in api.get(f"/api/projects/{project_id}/media",
                                                             params={"limit": 200}).json()["items"]}
    assert (labels[first], labels[second]) == ("anomalous", "normal")
    assert list(labels.values()).count("unlabelled") == total - 2
    api.close()
    print(f"journey: {time.monotonic() - started:.1f} s")
