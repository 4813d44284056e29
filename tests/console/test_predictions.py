"""A media item's prediction by a real exported PaDiM (the tiny model of the pipeline tests), against the
server process: score, verdict, heat map, errors; then the preview and the review queue showing them."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from PIL import Image

from infra.database.engine import session_scope
from infra.database.models import Model
from infra.model_files import openvino_prefix, upload_folder
from infra.settings import Settings
from infra.storage import build_store
from tests.conftest import REPO_ROOT
from tests.console.conftest import BrowserPage, ConsoleServer
from tests.integration.pipeline_helpers import class_images


def add_model(data_dir: Path, project_id: str, model_dir: Path | None, status: str = "ready",
              champion: bool = False, name: str | None = None, metrics: dict | None = None) -> str:
    """A model row as training leaves it, with its IR in the server's object storage."""
    with session_scope(f"sqlite:///{data_dir / 'inspect.db'}") as session:
        model = Model(project_id=uuid.UUID(project_id), name=name or f"m-{uuid.uuid4().hex[:4]}",
                      architecture="padim", status=status, champion=champion, metrics=metrics or {})
        session.add(model)
        session.flush()
        model_id = str(model.id)
    if model_dir is not None:
        upload_folder(build_store(Settings(data_dir=data_dir)), model_dir, openvino_prefix(model_id))
    return model_id


@pytest.fixture(scope="module")
def scored(console_server: ConsoleServer, model_dir: Path, part_images: Path) -> dict[str, str]:
    with console_server.api() as api:
        project = api.post("/api/projects", json={"name": f"Scored {uuid.uuid4().hex[:6]}"}).json()
        other = api.post("/api/projects", json={"name": f"Other {uuid.uuid4().hex[:6]}"}).json()
        ids = {}
        for name, folder, start, label in (("good", "MT_Free", 30, "normal"), ("crack", "MT_Crack", 0, "anomalous")):
            path = class_images(part_images, folder, 1, start=start)[0]
            answer = api.post(f"/api/projects/{project['id']}/media", data={"label": label},
                              files=[("files", (path.name, path.read_bytes(), "image/jpeg"))])
            assert answer.status_code == 201, answer.text
            ids[name] = answer.json()["items"][0]["id"]
    ids["project"], ids["other_project"] = project["id"], other["id"]
    ids["champion"] = add_model(console_server.data_dir, project["id"], model_dir, champion=True)
    ids["training"] = add_model(console_server.data_dir, project["id"], None, status="training")
    ids["foreign"] = add_model(console_server.data_dir, other["id"], model_dir)
    return ids


def test_the_champion_scores_an_image_with_its_heat_map(console_server: ConsoleServer, scored: dict) -> None:
    with console_server.api() as api:
        good = api.get(f"/api/media/{scored['good']}/prediction")
        crack = api.get(f"/api/media/{scored['crack']}/prediction")
        assert good.status_code == 200 and crack.status_code == 200, (good.text, crack.text)
        good_body, crack_body = good.json(), crack.json()
        assert good_body["model_id"] == scored["champion"] and good_body["threshold"] == 0.5
        assert crack_body["score"] > good_body["score"]
        for body in (good_body, crack_body):
            assert 0.0 <= body["score"] <= 1.0
            assert body["label"] == ("anomalous" if body["score"] >= 0.5 else "normal")
        # Named explicitly: the same model, the same (cached) answer.
        again = api.get(f"/api/media/{scored['crack']}/prediction", params={"model_id": scored["champion"]})
        assert again.json() == crack_body

        heatmap = api.get(crack_body["heatmap_url"])
        assert heatmap.status_code == 200 and heatmap.headers["content-type"] == "image/png"
        assert heatmap.headers["etag"].startswith(f'"{scored["champion"]}-')
        original = Image.open(io.BytesIO(api.get(f"/api/media/{scored['crack']}").content))
        with Image.open(io.BytesIO(heatmap.content)) as image:
            assert image.format == "PNG" and max(image.size) <= 512
            assert abs(image.width / image.height - original.width / original.height) < 0.02


def test_prediction_errors_say_what_is_missing(console_server: ConsoleServer, scored: dict) -> None:
    with console_server.api() as api:
        media = scored["good"]
        expected = {
            f"/api/media/{uuid.uuid4()}/prediction": (404, "not found"),
            f"/api/media/{media}/prediction?model_id={uuid.uuid4()}": (404, "not found"),
            f"/api/media/{media}/prediction?model_id={scored['training']}": (409, "is training, not ready"),
            f"/api/media/{media}/prediction?model_id={scored['foreign']}": (422, "another project"),
            f"/api/media/{media}/prediction/heatmap.png?model_id={scored['training']}": (409, "not ready"),
        }
        for path, (status, words) in expected.items():
            answer = api.get(path)
            assert answer.status_code == status and words in answer.json()["detail"], (path, answer.text)
        lonely = api.post("/api/projects", json={"name": "no champion"}).json()
        from tests.conftest import png_bytes

        item = api.post(f"/api/projects/{lonely['id']}/media", data={"label": "normal"},
                        files=[("files", ("a.png", png_bytes(), "image/png"))]).json()["items"][0]
        answer = api.get(f"/api/media/{item['id']}/prediction")
        assert answer.status_code == 409 and "no champion" in answer.json()["detail"]


def test_the_preview_shows_score_verdict_and_a_heat_map_with_opacity(console: BrowserPage, scored: dict) -> None:
    page = console.page
    console.goto(f"/ui/media/{scored['crack']}")
    page.wait_for_function("() => document.getElementById('score').textContent !== '—'")
    score = float(page.locator("#score").inner_text())
    verdict = page.locator("#verdict").inner_text()
    assert verdict.endswith("anomalous" if score >= 0.5 else "normal")
    page.wait_for_function("() => document.getElementById('heatmap').naturalWidth > 0")
    page.locator("#opacity").fill("80")
    assert page.evaluate("document.getElementById('heatmap').style.opacity") == "0.8"
    assert "opacity=80" in page.url and page.locator("#opacity-value").inner_text() == "80 %"


def test_the_review_queue_shows_the_champions_view(console: BrowserPage, console_server: ConsoleServer,
                                                   scored: dict) -> None:
    with console_server.api() as api:
        assert api.patch(f"/api/media/{scored['good']}", json={"label": "unlabelled"}).status_code == 200
    page = console.page
    try:
        console.goto(f"/ui/projects/{scored['project']}/review")
        page.wait_for_function("() => !['…', '—'].includes(document.getElementById('review-score').textContent)")
        assert page.locator("#review-verdict").inner_text().split()[-1] in ("normal", "anomalous")
        page.wait_for_function("() => document.getElementById('review-heatmap').naturalWidth > 0")
    finally:
        with console_server.api() as api:
            api.patch(f"/api/media/{scored['good']}", json={"label": "normal"})


PROBE = """
import json, sys, tempfile, uuid
from pathlib import Path
from fastapi.testclient import TestClient
from api.app import create_app
from infra.settings import Settings
from tests.console.test_predictions import add_model

model_dir, image = Path(sys.argv[1]), Path(sys.argv[2])
with tempfile.TemporaryDirectory() as data_dir:
    settings = Settings(data_dir=data_dir, job_index_poll_s=0)
    with TestClient(create_app(settings)) as client:
        project = client.post("/api/projects", json={"name": "probe"}).json()["id"]
        media = client.post(f"/api/projects/{project}/media", data={"label": "normal"},
                            files=[("files", (image.name, image.read_bytes(), "image/jpeg"))]).json()["items"][0]["id"]
        add_model(Path(data_dir), project, model_dir, champion=True)
        status = client.get(f"/api/media/{media}/prediction").status_code
    print(json.dumps({"status": status, "torch": "torch" in sys.modules, "openvino": "openvino" in sys.modules}))
"""


def test_the_api_process_predicts_without_importing_torch(model_dir: Path, part_images: Path, tmp_path: Path) -> None:
    image = class_images(part_images, "MT_Free", 1)[0]
    result = subprocess.run([sys.executable, "-c", PROBE, str(model_dir), str(image)], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen == {"status": 200, "torch": False, "openvino": True}
