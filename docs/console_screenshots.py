"""Screenshots of every console page at 1366x768 into docs/img/console-*.png (the README shows them).

Starts the API (uvicorn, with an API key) on a temporary data dir, fills a project with the test
suite's synthetic parts, a champion (the tiny PaDiM of the pipeline tests, trained once and kept in
.pytest_cache), unlabelled frames and some jobs, then drives Debian's Chromium with Playwright.
Needs the dev extras (Playwright) and /usr/bin/chromium:

    .venv/bin/python docs/console_screenshots.py
"""

from __future__ import annotations

import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from infra.database.engine import session_scope  # noqa: E402
from infra.database.models import ActivePipeline, JobRecord, Media, Pipeline, Sink, Source  # noqa: E402
from tests.browser import OFFLINE_ARGS  # noqa: E402
from tests.console.test_predictions import add_model  # noqa: E402
from tests.integration.api_server import api_server  # noqa: E402
from tests.integration.pipeline_helpers import synthetic_parts_key, tiny_padim_key, train_tiny_padim  # noqa: E402
from tests.synthetic_parts import write_parts  # noqa: E402

OUT = REPO_ROOT / "docs" / "img"
KEY = "screenshots-" + uuid.uuid4().hex
VIEWPORT = {"width": 1366, "height": 768}


def seed(base_url: str, data_dir: Path, parts: Path, model_dir: Path) -> dict[str, str]:
    import httpx

    headers = {"X-API-Key": KEY}
    with httpx.Client(base_url=base_url, headers=headers, timeout=120) as api:
        for name in ("Line 1 – bracket", "Line 2 – gasket"):
            api.post("/api/projects", json={"name": name})
        project = api.post("/api/projects", json={"name": "Line 3 – housing"}).json()
        uploads = {"normal": sorted((parts / "MT_Free" / "Imgs").glob("*.jpg"))[:40],
                   "anomalous": [path for folder in ("MT_Crack", "MT_Blowhole")
                                 for path in sorted((parts / folder / "Imgs").glob("*.jpg"))[:4]]}
        for label, paths in uploads.items():
            files = [("files", (path.name, path.read_bytes(), "image/jpeg")) for path in paths]
            assert api.post(f"/api/projects/{project['id']}/media", data={"label": label}, files=files
                            ).status_code == 201
        frames = [path for folder in ("MT_Free", "MT_Crack") for path in
                  sorted((parts / folder / "Imgs").glob("*.jpg"))[40 if folder == "MT_Free" else 4:][:3]]
        items = api.post(f"/api/projects/{project['id']}/media", data={"label": "normal"},
                         files=[("files", (f"line-frame-{index}.jpg", path.read_bytes(), "image/jpeg"))
                                for index, path in enumerate(frames)]).json()["items"]
    champion = add_model(data_dir, project["id"], model_dir, champion=True, name="v7",
                         metrics={"image_auroc": 0.9412, "image_f1": 0.889})
    now = datetime.now(UTC)
    project_id = uuid.UUID(project["id"])
    with session_scope(f"sqlite:///{data_dir / 'inspect.db'}") as session:
        source = Source(project_id=project_id, type="video_file", name="Gate camera", config={"path": "line.mp4"})
        sink = Sink(project_id=project_id, type="mqtt", name="Alarms",
                    config={"broker": "mqtt://127.0.0.1:1883", "topic": "line3/anomalies"})
        folder = Sink(project_id=project_id, type="filesystem", name="Press 2 folder",
                      config={"output_dir": "/data/line/press2-anomalies"})
        session.add_all([source, sink, folder])
        session.flush()
        pipeline = Pipeline(project_id=project_id, name="Gate camera", model_id=uuid.UUID(champion),
                            source_id=source.id, sink_id=sink.id, follow_champion=True,
                            config={"threshold": 0.5, "fps": 10.0, "data_collection": {"mode": "uncertain"}})
        session.add(pipeline)
        session.add(Pipeline(project_id=project_id, name="Press 2", model_id=uuid.UUID(champion),
                             source_id=source.id, sink_id=folder.id,
                             config={"threshold": "model", "fps": 5.0, "data_collection": {"mode": "off"}}))
        session.flush()
        scores = [round(0.18 + 0.05 * ((index * 7) % 9) / 9 + (0.5 if index in (41, 42, 97) else 0), 3)
                  for index in range(120)]
        session.add(ActivePipeline(pipeline_id=pipeline.id, status="running", started_at=now, metrics={
            "frames_processed": 18_412, "anomalies_detected": 3, "fps": 9.9, "latency_ms_p50": 38.0,
            "latency_ms_p95": 61.0, "frames_dropped": 4, "collected": 3, "recent_scores": scores}))
        add_retraining_decisions(session, project_id, now)
        for item in items:  # collected by the line in `uncertain` mode, waiting for a verdict
            media = session.get(Media, uuid.UUID(item["id"]))
            media.label, media.origin, media.pipeline_id, media.score = "unlabelled", "collected", pipeline.id, 0.52
        for index, (job_type, status, minutes) in enumerate((("training", "completed", 42), ("export", "completed", 30),
                                                             ("snapshot", "completed", 44), ("training", "failed", 90),
                                                             ("retraining", "cancelled", 300))):
            started = now - timedelta(minutes=minutes)
            session.add(JobRecord(id=uuid.uuid4(), project_id=project_id, type=job_type, status=status,
                                  progress=1.0 if status == "completed" else 0.4 + index / 20,
                                  message="out of memory" if status == "failed" else None, metrics={},
                                  created_at=started, started_at=started,
                                  finished_at=started + timedelta(seconds=35 + index * 20), settled=True,
                                  synced_at=now))
        line_id = str(pipeline.id)
    return {"project": project["id"], "media": uploads_first(base_url, project["id"]), "champion": champion,
            "line": line_id}


def seed_models(base_url: str, data_dir: Path, project_id: str, champion: str, model_dir: Path) -> dict[str, str]:
    """The models pages' data: a ready snapshot of the project, the champion's evaluation record from its real
    scores (the prediction endpoint), a second model on the same network with a lower threshold, a failed one."""
    import httpx

    from infra.database.models import Model, Snapshot, SnapshotItem
    from infra.evaluation import EvaluationRecord, ScoredItem, save_record
    from infra.settings import Settings
    from infra.storage import build_store

    with httpx.Client(base_url=base_url, headers={"X-API-Key": KEY}, timeout=120) as api:
        media = [item for label in ("normal", "anomalous") for item in api.get(
            f"/api/projects/{project_id}/media", params={"label": label, "limit": 500}).json()["items"]]
        scores = {item["id"]: api.get(f"/api/media/{item['id']}/prediction", params={"model_id": champion}
                                      ).json()["score"] for item in media}
    second = add_model(data_dir, project_id, model_dir, name="v6 (threshold 0.45)",
                       metrics={"image_auroc": 0.9412, "image_f1": 0.871, "threshold": 0.45})
    failed = add_model(data_dir, project_id, None, status="failed", name="v8")
    with session_scope(f"sqlite:///{data_dir / 'inspect.db'}") as session:
        snapshot = Snapshot(project_id=uuid.UUID(project_id), name="Training set of v7", status="ready")
        session.add(snapshot)
        session.flush()
        rows = [SnapshotItem(snapshot_id=snapshot.id, media_id=uuid.UUID(item["id"]), filename=item["filename"],
                             label=item["label"], sha256=session.get(Media, uuid.UUID(item["id"])).sha256,
                             split=item["split"]) for item in media]
        session.add_all(rows)
        session.flush()
        for model_id in (champion, second):
            model = session.get(Model, uuid.UUID(model_id))
            model.snapshot_id = snapshot.id
            model.parameters = {"backbone": "mobilenetv2_100", "layers": ["blocks.2", "blocks.4"], "n_features": 128}
        broken = session.get(Model, uuid.UUID(failed))
        broken.architecture, broken.error = "patchcore", "Training needs at least 8 normal images; snapshot has 5"
        evaluated = [(row, scores[str(row.media_id)]) for row in rows
                     if row.split == "eval" or row.label == "anomalous"]
        snapshot_id = snapshot.id
    store = build_store(Settings(data_dir=data_dir))
    for model_id, threshold in ((champion, 0.5), (second, 0.45)):
        save_record(store, model_id, EvaluationRecord(snapshot_id, threshold, [
            ScoredItem(row.id, row.media_id, row.filename, row.label, score) for row, score in evaluated]))
    return {"champion": champion, "second": second}




def add_retraining_decisions(session: Session, project_id: uuid.UUID, now: datetime) -> None:
    """Three nights of scheduled retraining, as the schedule page's history lists them."""
    decisions = (("promoted", "candidate image AUROC 0.9412 beats the champion's 0.9125 by 0.0287 (needs 0.01)",
                  0.9412, 0.9125),
                 ("kept", "candidate image AUROC 0.9150 does not beat the champion's 0.9125 by 0.01", 0.915, 0.9125),
                 ("skipped", "6 new images since the champion's snapshot; the schedule needs 20", None, None))
    for night, (decision, reason, candidate, champion) in enumerate(decisions):
        started = now - timedelta(days=night + 1, hours=-2)
        session.add(JobRecord(id=uuid.uuid4(), project_id=project_id, type="retraining", status="completed",
                              progress=1.0, message=None, created_at=started, started_at=started,
                              finished_at=started + timedelta(minutes=3), settled=True, synced_at=now,
                              metrics={"decision": decision, "reason": reason, "candidate_image_auroc": candidate,
                                       "champion_image_auroc": champion}))


def line_shots(page: Any, base_url: str, ids: dict[str, str]) -> None:
    """The lines list, the line view, the line form with a refused field, and the schedule page."""
    project = f"{base_url}/ui/projects/{ids['project']}"
    page.goto(f"{project}/lines")
    page.screenshot(path=OUT / "console-lines.png")
    page.goto(f"{project}/lines/{ids['line']}")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=OUT / "console-line.png")
    page.goto(f"{project}/lines/new")
    page.get_by_label("Name").fill("Press 2")
    page.get_by_label("Where to read it").fill("/data/line/press2.mp4")
    page.get_by_label("Frames per second (at most)").fill("500")
    page.get_by_role("button", name="Create line").click()
    page.screenshot(path=OUT / "console-line-form.png")
    page.goto(f"{project}/schedule")
    page.screenshot(path=OUT / "console-schedule.png")


def uploads_first(base_url: str, project_id: str) -> str:
    import httpx

    items = httpx.get(f"{base_url}/api/projects/{project_id}/media", params={"label": "anomalous", "limit": 1},
                      headers={"X-API-Key": KEY}).json()["items"]
    return items[0]["id"]


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="console-shots-") as tmp:
        parts = write_parts(Path(tmp) / "parts")
        cache = REPO_ROOT / ".pytest_cache" / "d" / f"tiny-padim-{tiny_padim_key(synthetic_parts_key())}"
        model_dir = train_tiny_padim(parts, cache)
        data_dir = Path(tmp) / "data"
        with api_server(data_dir, {"INSPECT_API_KEY": KEY, "INSPECT_JOB_INDEX_POLL_S": "0"}) as base_url:
            ids = seed(base_url, data_dir, parts, model_dir)
            models = seed_models(base_url, data_dir, ids["project"], ids["champion"], model_dir)
            OUT.mkdir(parents=True, exist_ok=True)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                                     args=["--no-sandbox", *OFFLINE_ARGS])
                page = browser.new_context(viewport=VIEWPORT).new_page()
                page.goto(f"{base_url}/ui/")
                page.screenshot(path=OUT / "console-sign-in.png")
                page.get_by_label("API key").fill(KEY)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url("**/ui/")
                page.screenshot(path=OUT / "console-projects.png")
                page.goto(f"{base_url}/ui/projects/{ids['project']}")
                page.wait_for_load_state("networkidle")
                page.screenshot(path=OUT / "console-dataset.png")
                page.goto(f"{base_url}/ui/media/{ids['media']}")
                page.wait_for_function("() => document.getElementById('score').textContent !== '—'", timeout=60_000)
                page.wait_for_load_state("networkidle")
                page.screenshot(path=OUT / "console-preview.png")
                page.goto(f"{base_url}/ui/projects/{ids['project']}/review")
                scored = "() => !['…', '—'].includes(document.getElementById('review-score').textContent)"
                page.wait_for_function(scored, timeout=60_000)
                page.wait_for_load_state("networkidle")
                page.screenshot(path=OUT / "console-review.png")
                page.goto(f"{base_url}/ui/jobs")
                page.screenshot(path=OUT / "console-jobs.png")
                models_url = f"{base_url}/ui/projects/{ids['project']}/models"
                page.goto(models_url)
                page.screenshot(path=OUT / "console-models.png")
                page.goto(f"{models_url}/{models['champion']}")
                page.wait_for_load_state("networkidle")
                page.screenshot(path=OUT / "console-model.png", full_page=True)
                page.goto(f"{models_url}/compare?ids={models['champion']},{models['second']}")
                page.wait_for_load_state("networkidle")
                page.screenshot(path=OUT / "console-compare.png", full_page=True)
                page.goto(f"{base_url}/ui/projects/{ids['project']}/train?architecture=padim")
                page.screenshot(path=OUT / "console-train.png", full_page=True)
                line_shots(page, base_url, ids)
                browser.close()
    print(f"screenshots in {OUT}")


if __name__ == "__main__":
    main()
