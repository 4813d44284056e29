"""The dataset page in Chromium: upload (file input, drop, no scripts), counts, gallery, filters, paging,
label/split changes of a selection and of one item in its preview."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest

from tests.conftest import png_bytes
from tests.console.conftest import BrowserPage, ConsoleServer, open_page, sign_in


def _project(server: ConsoleServer, normal: int = 0, anomalous: int = 0) -> dict:
    with server.api() as api:
        project = api.post("/api/projects", json={"name": f"Dataset {uuid.uuid4().hex[:6]}"}).json()
        for label, count, channel in (("normal", normal, 0), ("anomalous", anomalous, 1)):
            if count:
                files = [("files", (f"{label}-{i:03d}.png", png_bytes(color=(i, channel * 200, 77)), "image/png"))
                         for i in range(count)]
                assert api.post(f"/api/projects/{project['id']}/media", data={"label": label}, files=files
                                ).status_code == 201
    return project


def _media(server: ConsoleServer, project_id: str, **query: Any) -> dict:
    with server.api() as api:
        return api.get(f"/api/projects/{project_id}/media", params={"limit": 200, **query}).json()


def test_upload_by_file_input_and_by_drop_shows_each_file(console: BrowserPage, console_server: ConsoleServer,
                                                          tmp_path) -> None:
    project = _project(console_server)
    page = console.page
    console.goto(f"/ui/projects/{project['id']}")
    good = [tmp_path / "good-1.png", tmp_path / "good-2.png"]
    for index, path in enumerate(good):
        path.write_bytes(png_bytes(color=(10 + index, 20, 30)))
    broken = tmp_path / "notes.txt"
    broken.write_text("not an image")
    page.get_by_label("anomalous").check()
    page.set_input_files("#files", [*good, broken])
    page.get_by_role("button", name="Upload").click()
    page.wait_for_selector('#upload-form[data-state="done"]')
    rows = page.locator("#upload-progress li")
    assert rows.count() == 3
    assert page.locator('#upload-progress li[data-state="stored"]').count() == 2
    refused = page.locator('#upload-progress li[data-state="refused"]')
    assert "notes.txt" in refused.inner_text() and "not a supported image" in refused.inner_text()
    assert page.locator(".upload-summary").inner_text().startswith("2 stored, 1 refused")
    stored = _media(console_server, project["id"])
    assert stored["total"] == 2 and {item["label"] for item in stored["items"]} == {"anomalous"}

    # A drop of files onto the zone (a synthetic drop event carrying File objects) uploads them the same way.
    page.evaluate("() => document.getElementById('upload-form').removeAttribute('data-state')")
    page.get_by_label("normal", exact=True).check()
    encoded = [base64.b64encode(png_bytes(color=(90, 10 + index, 40))).decode() for index in range(3)]
    page.evaluate("""(images) => {
        const transfer = new DataTransfer();
        images.forEach((data, index) => {
            const bytes = Uint8Array.from(atob(data), (char) => char.charCodeAt(0));
            transfer.items.add(new File([bytes], `dropped-${index}.png`, { type: "image/png" }));
        });
        const zone = document.getElementById("drop-zone");
        zone.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, bubbles: true, cancelable: true }));
        zone.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
    }""", encoded)
    page.wait_for_selector('#upload-form[data-state="done"]')
    assert page.locator('#upload-progress li[data-state="stored"]').count() == 3
    assert _media(console_server, project["id"], label="normal")["total"] == 3
    # Every file of a batch went in one request to the REST upload.
    uploads = [url for url in console.record.urls("POST") if url.endswith(f"/api/projects/{project['id']}/media")]
    assert len(uploads) == 2


def test_upload_works_without_scripts_and_lists_refused_files(browser: Any, console_server: ConsoleServer,
                                                              tmp_path) -> None:
    project = _project(console_server)
    context, view = open_page(browser, console_server.base_url, javascript=False)
    try:
        sign_in(view, console_server.key)
        view.goto(f"/ui/projects/{project['id']}")
        good, broken = tmp_path / "part.png", tmp_path / "broken.png"
        good.write_bytes(png_bytes(color=(1, 2, 3)))
        broken.write_bytes(png_bytes()[:40])  # a truncated PNG
        view.page.set_input_files("#files", [good, broken])
        view.page.get_by_role("button", name="Upload").click()
        view.page.wait_for_load_state()
        assert "1 stored, 1 refused" in view.page.locator(".upload-summary").inner_text()
        assert "broken.png" in view.page.locator(".upload-list").inner_text()
        assert _media(console_server, project["id"])["total"] == 1
        view.record.assert_clean()
    finally:
        context.close()


def test_gallery_counts_filters_pages_and_changes_a_selection(console: BrowserPage,
                                                              console_server: ConsoleServer) -> None:
    project = _project(console_server, normal=50, anomalous=2)
    page = console.page
    console.record.expect_error("status of 422")
    console.goto(f"/ui/projects/{project['id']}")
    assert page.locator('[data-count="label-normal"]').inner_text() == "50"
    assert page.locator('[data-count="label-anomalous"]').inner_text() == "2"
    splits = _media(console_server, project["id"], split="eval")["total"]
    assert page.locator('[data-count="split-eval"]').inner_text() == str(splits)
    tiles = page.locator(".gallery .tile")
    assert tiles.count() == 48
    assert tiles.first.locator("img").get_attribute("loading") == "lazy"
    page.get_by_role("link", name="Next ›").click()
    assert page.locator(".gallery .tile").count() == 4 and "page=2" in page.url

    page.get_by_label("Label", exact=True).select_option("anomalous")
    page.get_by_role("button", name="Apply filters").click()
    assert "label=anomalous" in page.url and page.locator(".gallery .tile").count() == 2

    # An anomalous image cannot go to train: the whole selection is refused with the API's reason.
    page.get_by_label("Select page").check()
    page.get_by_label("Set split").select_option("train")
    page.get_by_role("button", name="Apply to selected").click()
    assert "only used for evaluation" in page.locator("#bulk-error").inner_text()
    assert _media(console_server, project["id"], label="anomalous", split="train")["total"] == 0

    console.goto(f"/ui/projects/{project['id']}?label=normal&split=train")
    boxes = page.locator('input[name="media_ids"]')
    chosen = [boxes.nth(index).get_attribute("value") for index in range(2)]
    for index in range(2):
        boxes.nth(index).check()
    assert page.locator("#selected-count").inner_text() == "2 selected"
    page.get_by_label("Set split").select_option("eval")
    page.get_by_role("button", name="Apply to selected").click()
    assert "2 items changed" in page.locator(".notice").inner_text()
    assert "label=normal" in page.url  # back on the same filtered page
    with console_server.api() as api:
        assert {api.get(f"/api/projects/{project['id']}/media", params={"split": "eval", "limit": 200})
                .json()["total"]} == {splits + 2}
    for media_id in chosen:
        tile = page.locator(f'input[value="{media_id}"]')
        assert tile.count() == 0  # no longer in train


def test_the_preview_changes_one_item_and_says_when_there_is_no_champion(console: BrowserPage,
                                                                         console_server: ConsoleServer) -> None:
    project = _project(console_server, normal=2)
    page = console.page
    console.goto(f"/ui/projects/{project['id']}")
    page.locator(".gallery .tile a.thumb").first.click()
    page.wait_for_url("**/ui/media/*")
    media_id = page.url.rsplit("/", 1)[-1]
    assert "No champion model yet" in page.locator("#prediction").inner_text()
    page.get_by_label("Label").select_option("anomalous")
    page.get_by_role("button", name="Save").click()
    assert "Saved" in page.locator(".notice").inner_text()
    with console_server.api() as api:
        stored = api.get(f"/api/projects/{project['id']}/media", params={"label": "anomalous"}).json()["items"]
    assert [(item["id"], item["split"]) for item in stored] == [(media_id, "eval")]


@pytest.mark.parametrize("query", ["label=bogus", "line=not-a-uuid", "page=x"])
def test_bad_filters_answer_a_readable_422_page(console: BrowserPage, console_server: ConsoleServer,
                                                query: str) -> None:
    project = _project(console_server)
    console.record.expect_error("status of 422")
    response = console.goto(f"/ui/projects/{project['id']}?{query}")
    assert response.status == 422 and "text/html" in response.headers["content-type"]
    assert console.page.get_by_role("link", name="Back to the projects").is_visible()
