"""The review queue in Chromium, driven by the keyboard: each verdict is stored at once, no page loads."""

from __future__ import annotations

import uuid
from typing import Any

from tests.conftest import png_bytes
from tests.console.conftest import BrowserPage, ConsoleServer, open_page, sign_in


def _unlabelled_project(server: ConsoleServer, count: int) -> tuple[dict, list[str]]:
    """A project with `count` unlabelled items (as a line collects them in `uncertain` mode), newest first."""
    with server.api() as api:
        project = api.post("/api/projects", json={"name": f"Review {uuid.uuid4().hex[:6]}"}).json()
        for index in range(count):  # one request each: distinct creation times, a known order
            files = [("files", (f"frame-{index}.png", png_bytes(color=(index * 30, 50, 60)), "image/png"))]
            item = api.post(f"/api/projects/{project['id']}/media", data={"label": "normal"}, files=files
                            ).json()["items"][0]
            assert api.patch(f"/api/media/{item['id']}", json={"label": "unlabelled"}).status_code == 200
        queue = api.get(f"/api/projects/{project['id']}/media", params={"label": "unlabelled"}).json()["items"]
    return project, [item["id"] for item in queue]


def wait_shown(page: Any, media_id: str) -> None:
    """Until the queue shows that item (the page's own script moved to it)."""
    page.wait_for_function("(id) => document.getElementById('review-media-id').value === id", arg=media_id)


def _labels(server: ConsoleServer, project_id: str) -> dict[str, str]:
    with server.api() as api:
        items = api.get(f"/api/projects/{project_id}/media", params={"limit": 100}).json()["items"]
    return {item["id"]: item["label"] for item in items}


def test_keys_judge_skip_and_move_without_loading_a_page(console: BrowserPage, console_server: ConsoleServer) -> None:
    project, queue = _unlabelled_project(console_server, 4)
    page = console.page
    # The queue's first load is held back: a key pressed before it arrives must still count (a quick user's
    # first verdict, and a loaded CI machine's, was once dropped).
    held: list[Any] = []
    page.route("**/api/projects/*/media?label=unlabelled*", lambda route: held.append(route))
    console.goto(f"/ui/projects/{project['id']}/review")
    page.evaluate("window.__samePage = true")  # gone if anything reloads the page
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(50)
    assert page.locator("#review-media-id").input_value() == queue[0] and page.locator("#remaining").inner_text() == "4"
    page.keyboard.press("n")
    held[0].continue_()
    page.unroute("**/api/projects/*/media?label=unlabelled*")
    wait_shown(page, queue[1])
    page.locator("#review[data-ready]").wait_for(state="attached")
    assert _labels(console_server, project["id"])[queue[0]] == "normal"  # stored at once
    assert page.locator("#remaining").inner_text() == "3"

    page.keyboard.press("s")  # skip: no verdict
    wait_shown(page, queue[2])
    page.keyboard.press("ArrowLeft")
    wait_shown(page, queue[1])
    page.keyboard.press("a")
    wait_shown(page, queue[2])
    page.keyboard.press("ArrowRight")
    wait_shown(page, queue[3])
    page.keyboard.press("a")
    # The last verdict leads back to the one item still waiting.
    wait_shown(page, queue[2])
    assert page.locator("#remaining").inner_text() == "1"
    assert "is anomalous" in page.locator("#review-status").inner_text()
    page.get_by_role("button", name="Normal").click()  # the mouse does the same
    page.locator("#review-empty").wait_for(state="visible")
    assert page.evaluate("window.__samePage") is True
    labels = _labels(console_server, project["id"])
    assert [labels[media_id] for media_id in queue] == ["normal", "anomalous", "normal", "anomalous"]
    patches = [url for url in console.record.urls("PATCH") if url.rsplit("/", 1)[-1] in queue]
    assert len(patches) == 4


def test_the_queue_works_without_scripts(browser: Any, console_server: ConsoleServer) -> None:
    project, queue = _unlabelled_project(console_server, 2)
    context, view = open_page(browser, console_server.base_url, javascript=False)
    try:
        sign_in(view, console_server.key)
        view.goto(f"/ui/projects/{project['id']}/review")
        assert view.page.locator("#review-media-id").input_value() == queue[0]
        view.page.get_by_role("button", name="Anomalous").click()
        view.page.wait_for_load_state()
        assert view.page.locator("#review-media-id").input_value() == queue[1]
        assert view.page.locator("#remaining").inner_text() == "1"
        assert _labels(console_server, project["id"])[queue[0]] == "anomalous"
        view.record.assert_clean()
    finally:
        context.close()
