"""Every console page fits a 1366x768 screen: nothing wider than the window (no sideways scrolling)."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.conftest import png_bytes
from tests.console.conftest import BrowserPage, ConsoleServer


def test_every_page_fits_1366_wide(console: BrowserPage, console_server: ConsoleServer) -> None:
    with console_server.api() as api:
        project = api.post("/api/projects", json={"name": f"A long project name for layout {uuid.uuid4().hex}"}).json()
        files = [("files", (f"{'very-long-file-name-' * 4}{i}.png", png_bytes(color=(i, 9, 9)), "image/png"))
                 for i in range(60)]
        items = api.post(f"/api/projects/{project['id']}/media", data={"label": "normal"}, files=files
                         ).json()["items"]
        api.patch(f"/api/media/{items[0]['id']}", json={"label": "unlabelled"})
    pages = ["/ui/", f"/ui/projects/{project['id']}", f"/ui/media/{items[1]['id']}",
             f"/ui/projects/{project['id']}/review", "/ui/jobs", f"/ui/projects/{project['id']}/delete"]
    for path in pages:
        console.goto(path)
        console.page.wait_for_load_state("networkidle")
        width = console.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 1366, (path, width)


def test_the_lines_and_schedule_pages_fit_1366_wide(console: BrowserPage, console_server: ConsoleServer,
                                                     tmp_path: Path) -> None:
    with console_server.api() as api:
        project = api.post("/api/projects", json={"name": f"Lines layout {uuid.uuid4().hex}"}).json()
        source = api.post(f"/api/projects/{project['id']}/sources", json={
            "type": "video_file", "name": "Gate", "config": {"path": f"{tmp_path}/{'a-long-folder-name/' * 6}v.avi"}})
        sink = api.post(f"/api/projects/{project['id']}/sinks", json={
            "type": "webhook", "name": "Alerts", "config": {"url": f"http://127.0.0.1:9/{'hook/' * 12}"}})
        line = api.post(f"/api/projects/{project['id']}/pipelines", json={
            "name": "A line with a rather long name " * 3, "follow_champion": True,
            "source_id": source.json()["id"], "sink_id": sink.json()["id"]}).json()
    base = f"/ui/projects/{project['id']}"
    for path in (f"{base}/lines", f"{base}/lines/new", f"{base}/lines/{line['id']}", f"{base}/lines/{line['id']}/edit",
                 f"{base}/schedule"):
        console.goto(path)
        console.page.wait_for_load_state("networkidle")
        width = console.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 1366, (path, width)
        if path.endswith(("/new", "/edit")):  # the form's three cards side by side, none running into the next
            boxes = console.page.locator("form.line-form > fieldset").evaluate_all(
                "(sets) => sets.map((set) => [set.getBoundingClientRect().left, set.getBoundingClientRect().right])")
            assert len(boxes) == 3, (path, boxes)
            assert all(left[1] <= right[0] for left, right in zip(boxes, boxes[1:], strict=False)), (path, boxes)
