"""The projects page in Chromium: what each project holds and does; create, rename, delete (confirmed)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from infra.database.engine import session_scope
from infra.database.models import ActivePipeline, JobRecord, Model, Pipeline, Sink, Source
from tests.conftest import png_bytes
from tests.console.conftest import BrowserPage, ConsoleServer


def _seed_activity(server: ConsoleServer, project_id: str) -> None:
    """A champion with its AUROC, a running line and a finished training, as flows and the jobs index write them."""
    project = uuid.UUID(project_id)
    now = datetime.now(UTC)
    with session_scope(f"sqlite:///{server.data_dir / 'inspect.db'}") as session:
        model = Model(project_id=project, name="v7", architecture="padim", status="ready", champion=True,
                      metrics={"image_auroc": 0.9375})
        source = Source(project_id=project, type="webcam", name="cam", config={"device_index": 0})
        sink = Sink(project_id=project, type="webhook", name="hook", config={"url": "http://127.0.0.1:9/"})
        session.add_all([model, source, sink])
        session.flush()
        pipeline = Pipeline(project_id=project, name="Gate camera", model_id=model.id, source_id=source.id,
                            sink_id=sink.id)
        session.add(pipeline)
        session.flush()
        # No flow run id: nothing to reconcile with Prefect (which this server does not have).
        session.add(ActivePipeline(pipeline_id=pipeline.id, status="running", started_at=now))
        session.add(JobRecord(id=uuid.uuid4(), project_id=project, type="training", status="completed", progress=1.0,
                              metrics={}, created_at=now - timedelta(minutes=5), started_at=now - timedelta(minutes=5),
                              finished_at=now - timedelta(minutes=4), settled=True, synced_at=now))


def test_the_overview_shows_counts_champion_lines_and_last_job(console: BrowserPage,
                                                               console_server: ConsoleServer) -> None:
    with console_server.api() as api:
        project = api.post("/api/projects", json={"name": f"Overview {uuid.uuid4().hex[:6]}"}).json()
        files = [("files", (f"n{i}.png", png_bytes(color=(i, 90, 90)), "image/png")) for i in range(3)]
        assert api.post(f"/api/projects/{project['id']}/media", data={"label": "normal"}, files=files
                        ).status_code == 201
        bad = [("files", ("a.png", png_bytes(color=(200, 10, 10)), "image/png"))]
        assert api.post(f"/api/projects/{project['id']}/media", data={"label": "anomalous"}, files=bad
                        ).status_code == 201
    _seed_activity(console_server, project["id"])
    console.goto("/ui/")
    row = console.page.locator(f'tr[data-project-id="{project["id"]}"]')
    cells = [text.strip() for text in row.locator("td").all_inner_texts()]
    assert cells[:3] == ["3", "1", "0"]  # normal, anomalous, unlabelled
    assert "v7" in cells[3] and "image AUROC 0.938" in cells[3]
    assert "running" in cells[4] and "Gate camera" in cells[4]  # state in words, not colour alone
    assert "training" in cells[5] and "completed" in cells[5]


def test_create_rename_and_delete_with_bad_input_shown_by_the_field(console: BrowserPage,
                                                                    console_server: ConsoleServer) -> None:
    page = console.page
    console.record.expect_error("status of 422")
    name = f"Line {uuid.uuid4().hex[:6]}"
    console.goto("/ui/")
    with console_server.api() as api:
        before = len(api.get("/api/projects").json())
        # Blank (spaces pass the browser's `required`): the API's own message, next to the field; nothing stored.
        page.get_by_label("New project").fill("   ")
        page.get_by_role("button", name="Create project").click()
        assert page.locator("#name-error").inner_text().strip().endswith("name must not be blank")
        assert page.get_by_label("New project").get_attribute("aria-invalid") == "true"
        assert len(api.get("/api/projects").json()) == before

        page.get_by_label("New project").fill(name)
        page.get_by_role("button", name="Create project").click()
        page.wait_for_url("**/ui/projects/*")
        project_id = page.url.rsplit("/", 1)[-1]
        assert api.get(f"/api/projects/{project_id}").json()["name"] == name

        console.goto("/ui/")
        row = page.locator(f'tr[data-project-id="{project_id}"]')
        row.get_by_text("Rename").click()
        row.get_by_label("New name").fill("  ")
        row.get_by_role("button", name="Save").click()
        row = page.locator(f'tr[data-project-id="{project_id}"]')
        assert "name must not be blank" in row.locator(".field-error").inner_text()
        row.get_by_label("New name").fill(f"{name} renamed")
        row.get_by_role("button", name="Save").click()
        page.wait_for_url("**/ui/")
        assert api.get(f"/api/projects/{project_id}").json()["name"] == f"{name} renamed"

        page.locator(f'tr[data-project-id="{project_id}"]').get_by_role("link", name="Delete…").click()
        page.wait_for_url(f"**/ui/projects/{project_id}/delete")
        page.get_by_label("Type the project's name to confirm").fill(name)  # not the current name
        page.get_by_role("button", name="Delete project").click()
        assert "type the project's name exactly" in page.locator("#confirm_name-error").inner_text()
        assert api.get(f"/api/projects/{project_id}").status_code == 200
        page.get_by_label("Type the project's name to confirm").fill(f"{name} renamed")
        page.get_by_role("button", name="Delete project").click()
        page.wait_for_url("**/ui/")
        assert api.get(f"/api/projects/{project_id}").status_code == 404
        assert page.locator(f'tr[data-project-id="{project_id}"]').count() == 0


def test_the_console_works_from_the_keyboard(console: BrowserPage) -> None:
    """Tab reaches the navigation and the create form; Enter submits it."""
    page = console.page
    console.goto("/ui/")
    reached = []
    for _ in range(12):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.textContent.trim() || document.activeElement.id"))
    assert "Skip to content" in reached and "Projects" in reached and "Jobs" in reached and "new-name" in reached
    page.get_by_label("New project").focus()
    page.keyboard.type(f"Keyboard {uuid.uuid4().hex[:6]}")
    page.keyboard.press("Enter")
    page.wait_for_url("**/ui/projects/*")
