"""Dataset import and export on the real platform: an MVTec zip with masks and bad files, a server folder, the
export that imports back into an equal project, and what is refused before a job starts.

The images are synthetic parts (``tests/synthetic_parts.py``) with their drawn masks.
"""

from __future__ import annotations

import io
import stat
import uuid
import zipfile

import cv2
import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from PIL import Image
from sqlalchemy import select

from api.app import create_app
from infra.database.models import Media
from infra.settings import Settings
from infra.tracking import tracking_uri
from tests.conftest import png_bytes
from tests.integration.media_support import stored_files, upload
from tests.integration.selection_fixtures import CANDIDATES, JOB_TIMEOUT_S
from tests.platform_fixtures import wait_job
from tests.synthetic_parts import make_part

# An import takes seconds; the first job after the platform starts waits for the worker's warm fork server
# (torch and anomalib imported), which took over 2 minutes at load 15.
IMPORT_TIMEOUT_S = 300
# The drawn defects are plain to see: PaDiM on 8 training tiles locates them far better than chance.
PIXEL_AUROC_FLOOR = 0.8


def encoded(array, ext: str = ".png") -> bytes:
    ok, data = cv2.imencode(ext, array)
    assert ok
    return data.tobytes()


def part(defect: str, index: int) -> tuple[bytes, bytes]:
    """(JPEG image, PNG mask) of synthetic part ``index`` of class ``defect`` (MT_Free, MT_Crack, ...)."""
    image, mask = make_part(defect, index)
    return encoded(image, ".jpg"), encoded(mask)


def mvtec_zip() -> tuple[bytes, dict]:
    """An MVTec archive inside a top folder, with a few files that must be refused; and what should come of it."""
    files: dict[str | zipfile.ZipInfo, bytes] = {}
    for index in range(8):
        files[f"tiles/train/good/{index:03d}.jpg"] = part("MT_Free", index)[0]
    files["tiles/train/good/copy.jpg"] = files["tiles/train/good/000.jpg"]  # same content: a duplicate
    for index in range(8, 11):
        files[f"tiles/test/good/{index:03d}.jpg"] = part("MT_Free", index)[0]
    for index in range(3):
        image, mask = part("MT_Crack", index)
        files[f"tiles/test/crack/{index:03d}.jpg"] = image
        files[f"tiles/ground_truth/crack/{index:03d}_mask.png"] = mask
    image, mask = part("MT_Blowhole", 0)
    files["tiles/test/blowhole/000.jpg"] = image
    files["tiles/ground_truth/blowhole/000_mask.png"] = mask
    image, mask = make_part("MT_Blowhole", 1)
    files["tiles/test/blowhole/001.jpg"] = encoded(image, ".jpg")
    files["tiles/ground_truth/blowhole/001_mask.png"] = encoded(cv2.resize(mask, (50, 40)))  # wrong size
    files["tiles/test/crack/notes.jpg"] = b"not an image at all"
    files["tiles/ground_truth/crack/ghost_mask.png"] = part("MT_Crack", 5)[1]  # no test/crack/ghost.*
    files["tiles/../escape.jpg"] = part("MT_Free", 20)[0]
    link = zipfile.ZipInfo("tiles/train/good/link.jpg")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    files[link] = b"/etc/passwd"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in files.items():
            bundle.writestr(name, data)
    refused = {
        "tiles/test/blowhole/001.jpg": "its mask was refused",
        "tiles/ground_truth/blowhole/001_mask.png": "same size",
        "tiles/test/crack/notes.jpg": "not a supported image",
        "tiles/ground_truth/crack/ghost_mask.png": "a mask without an image",
        "tiles/../escape.jpg": "escapes",
        "tiles/train/good/link.jpg": "symbolic link",
    }
    return buffer.getvalue(), refused


def start_import(client: TestClient, project_id: str, archive: bytes):
    return client.post(f"/api/projects/{project_id}/imports",
                       files={"file": ("dataset.zip", archive, "application/zip")})


def finished_import(client: TestClient, response) -> dict:
    assert response.status_code == 202, response.text
    job = wait_job(client, response.json()["job_id"], {"completed", "failed", "cancelled"}, IMPORT_TIMEOUT_S)
    assert job["status"] == "completed", job
    print(f"import job: created {job['created_at']}, started {job['started_at']}, finished {job['finished_at']}")
    assert job["type"] == "import" and job["progress"] == 1.0
    return job["metrics"]


def media_rows(client: TestClient, project_id: str) -> set[tuple]:
    with client.app.state.sessionmaker() as session:
        return set(session.execute(select(Media.sha256, Media.label, Media.split, Media.mask_sha256, Media.defect_type)
                                   .where(Media.project_id == uuid.UUID(project_id))).all())


@pytest.fixture(scope="module")
def imported(platform, platform_client) -> dict:
    """A project imported from the MVTec zip (one import job for the module's tests)."""
    project = platform_client.post("/api/projects", json={"name": "Imported tiles"}).json()
    archive, refused = mvtec_zip()
    metrics = finished_import(platform_client, start_import(platform_client, project["id"], archive))
    return {"project": project, "metrics": metrics, "refused": refused}


def test_an_mvtec_zip_imports_its_images_masks_and_defect_types(platform_client, imported):
    metrics, project_id = imported["metrics"], imported["project"]["id"]
    assert (metrics["layout"], metrics["added"], metrics["masks"], metrics["duplicates"]) == ("mvtec", 15, 4, 1)
    reasons = {refusal["file"]: refusal["reason"] for refusal in metrics["refused"]}
    assert set(reasons) == set(imported["refused"]) and metrics["refused_total"] == len(reasons)
    for name, fragment in imported["refused"].items():
        assert fragment in reasons[name], (name, reasons[name])

    def total(**filters: str) -> int:
        return platform_client.get(f"/api/projects/{project_id}/media", params=filters).json()["total"]

    assert total(label="normal", split="train") == 8 and total(label="normal", split="eval") == 3
    cracks = platform_client.get(f"/api/projects/{project_id}/media", params={"defect_type": "crack"}).json()
    assert cracks["total"] == 3 and all(item["has_mask"] and item["split"] == "eval" for item in cracks["items"])
    assert {item["filename"] for item in cracks["items"]} == {"000.jpg", "001.jpg", "002.jpg"}
    assert total(defect_type="blowhole") == 1 and total(origin="uploaded") == 15
    mask = platform_client.get(f"/api/media/{cracks['items'][0]['id']}/mask")
    assert mask.status_code == 200 and mask.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_export_imports_back_into_an_equal_project(platform_client, imported):
    source_id = imported["project"]["id"]
    exported = platform_client.get(f"/api/projects/{source_id}/dataset", params={"format": "mvtec"})
    assert exported.status_code == 200 and exported.headers["content-type"] == "application/zip"
    copy = platform_client.post("/api/projects", json={"name": "Round trip"}).json()
    metrics = finished_import(platform_client, start_import(platform_client, copy["id"], exported.content))
    assert (metrics["added"], metrics["masks"], metrics["duplicates"], metrics["refused"]) == (15, 4, 0, [])
    assert media_rows(platform_client, copy["id"]) == media_rows(platform_client, source_id)
    # The same archive again: every image is already there.
    again = finished_import(platform_client, start_import(platform_client, copy["id"], exported.content))
    assert (again["added"], again["duplicates"]) == (0, 15)
    assert not [key for key in platform_client.app.state.store.list("projects/") if "/imports/" in key]


def test_a_flat_server_folder_imports_with_the_project_split_rules(platform_client, tmp_path):
    root = tmp_path / "line-4"
    for folder in ("normal", "anomalous", "masks"):
        (root / folder).mkdir(parents=True)
    for index in range(10):
        (root / "normal" / f"good-{index}.jpg").write_bytes(part("MT_Free", 30 + index)[0])
    image, mask = part("MT_Scratch", 0)
    (root / "anomalous" / "scratch.jpg").write_bytes(image)
    (root / "masks" / "scratch.png").write_bytes(mask)
    project = platform_client.post("/api/projects", json={"name": "Flat folder"}).json()
    response = platform_client.post(f"/api/projects/{project['id']}/imports", json={"path": str(root)})
    metrics = finished_import(platform_client, response)
    assert (metrics["layout"], metrics["added"], metrics["masks"], metrics["refused"]) == ("flat", 11, 1, [])
    normals = platform_client.get(f"/api/projects/{project['id']}/media", params={"label": "normal"}).json()["items"]
    assert sum(item["split"] == "eval" for item in normals) >= 4  # the split rules: 4 eval normals from the 8th on
    anomalous = platform_client.get(f"/api/projects/{project['id']}/media", params={"label": "anomalous"}).json()
    assert anomalous["items"][0]["has_mask"] and anomalous["items"][0]["defect_type"] is None


def test_what_cannot_be_imported_is_refused_before_a_job_and_stores_nothing(client, project, tmp_path):
    def refused(response, status: int, fragment: str) -> None:
        assert response.status_code == status, response.text
        assert fragment in str(response.json()["detail"]), response.json()

    url = f"/api/projects/{project['id']}/imports"
    refused(start_import(client, project["id"], b"plain text"), 422, "not a zip archive")
    flat_names = io.BytesIO()
    with zipfile.ZipFile(flat_names, "w") as bundle:
        bundle.writestr("pictures/a.png", png_bytes())
    refused(start_import(client, project["id"], flat_names.getvalue()), 422, "unknown dataset layout")
    only_masks = io.BytesIO()
    with zipfile.ZipFile(only_masks, "w") as bundle:
        bundle.writestr("ground_truth/crack/a_mask.png", png_bytes())
        bundle.writestr("test/crack/deeper/a.png", png_bytes())  # too deep: outside the layout
    refused(start_import(client, project["id"], only_masks.getvalue()), 422, "holds no image")
    refused(client.post(url, files={"other": ("a.zip", b"x")}), 422, "field 'file'")
    refused(client.post(url, json={"path": "/"}), 422, "INSPECT_ALLOWED_PATHS")
    refused(client.post(url, json={"path": str(tmp_path / "missing")}), 422, "no folder")
    refused(client.post(url, json={"path": str(tmp_path), "extra": 1}), 422, "extra")
    refused(client.post(url, content=b"x", headers={"content-type": "text/plain"}), 415, "multipart")
    refused(client.post(f"/api/projects/{uuid.uuid4()}/imports", json={"path": str(tmp_path)}), 404, "not found")
    assert stored_files(client) == []


def test_an_archive_over_the_import_limits_is_refused(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", max_import_bytes=10_000, max_import_files=5)
    with TestClient(create_app(settings)) as client:
        project = client.post("/api/projects", json={"name": "Limits"}).json()
        big, many = io.BytesIO(), io.BytesIO()
        with zipfile.ZipFile(big, "w") as bundle:
            bundle.writestr("train/good/a.bmp", bytes(10_001))
        with zipfile.ZipFile(many, "w") as bundle:
            for index in range(6):
                bundle.writestr(f"train/good/{index}.png", png_bytes())
        for archive, fragment in ((big, "INSPECT_MAX_IMPORT_BYTES"), (many, "INSPECT_MAX_IMPORT_FILES")):
            response = start_import(client, project["id"], archive.getvalue())
            assert response.status_code == 422 and fragment in response.json()["detail"], response.text
        assert stored_files(client) == []


def test_the_export_streams_the_labelled_media_in_the_mvtec_layout(client, project):
    normals = [(f"n{index}.png", png_bytes(color=(index, 50, 50))) for index in range(10)]
    items = upload(client, project["id"], normals).json()["items"]
    defect = upload(client, project["id"], [("d.png", png_bytes(color=(250, 0, 0)))], label="anomalous").json()
    defect_id = defect["items"][0]["id"]
    assert client.patch(f"/api/media/{defect_id}", json={"defect_type": "dent"}).status_code == 200
    mask = io.BytesIO()
    Image.new("L", (64, 48), 255).save(mask, format="PNG")
    assert client.put(f"/api/media/{defect_id}/mask", files={"file": ("m.png", mask.getvalue())}).status_code == 200
    assert client.patch(f"/api/media/{items[0]['id']}", json={"label": "unlabelled"}).status_code == 200

    response = client.get(f"/api/projects/{project['id']}/dataset", params={"format": "mvtec"})
    assert response.status_code == 200 and 'filename="Line_1-mvtec.zip"' in response.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(response.content)) as bundle:
        names = set(bundle.namelist())
        assert bundle.read("test/dent/d.png") == client.get(f"/api/media/{defect_id}").content
        assert bundle.read("ground_truth/dent/d_mask.png") == client.get(f"/api/media/{defect_id}/mask").content
    by_split = {item["filename"]: item["split"] for item in items[1:]}
    expected = {f"{'train' if split == 'train' else 'test'}/good/{name}" for name, split in by_split.items()}
    assert names == expected | {"test/dent/d.png", "ground_truth/dent/d_mask.png"}  # the unlabelled one is left out
    assert client.get(f"/api/projects/{project['id']}/dataset").status_code == 422  # the format is required
    assert client.get(f"/api/projects/{project['id']}/dataset", params={"format": "coco"}).status_code == 422
    assert client.get(f"/api/projects/{uuid.uuid4()}/dataset", params={"format": "mvtec"}).status_code == 404


def test_auto_training_on_imported_masks_reports_pixel_metrics_and_its_evaluation(platform, platform_client, imported):
    """The issue's whole path: an imported MVTec zip with masks trains with `auto`; the model shows image
    and pixel metrics (anomalib's pixel AUROC and AUPRO on the masks) in the model, the job and MLflow, its
    evaluation, and the candidates it beat."""
    response = platform_client.post(f"/api/projects/{imported['project']['id']}/train", json={
        "model_name": "masked", "architecture": "auto", "candidates": CANDIDATES})
    assert response.status_code == 202, response.text
    job = wait_job(platform_client, response.json()["job_id"], {"completed", "failed", "cancelled"}, JOB_TIMEOUT_S)
    assert job["status"] == "completed", job
    model = platform_client.get(f"/api/models/{response.json()['model_id']}").json()
    metrics = model["metrics"]
    print("auto on imported masks", {key: value for key, value in metrics.items() if key != "candidates"})
    assert metrics["pixel_metrics"] == "masks" and "synthetic_pixel_auroc" not in metrics
    assert metrics["eval_images"] == 7  # 3 good + 4 defective with masks
    for key in ("image_auroc", "image_f1", "pixel_auroc", "aupro"):
        assert 0.0 <= metrics[key] <= 1.0, key
        assert job["metrics"][key] == pytest.approx(metrics[key], abs=1e-6), key
    assert metrics["pixel_auroc"] > PIXEL_AUROC_FLOOR, metrics
    candidates, selection = metrics["candidates"], metrics["selection"]
    assert len(candidates) == len(CANDIDATES) and all(item["status"] == "trained" for item in candidates), candidates
    assert all(0.0 <= item["pixel_auroc"] <= 1.0 for item in candidates), candidates
    assert candidates[selection["chosen_index"]]["parameters"]["backbone"] == model["parameters"]["backbone"]
    assert selection["reason"]

    evaluation = platform_client.get(f"/api/models/{model['id']}/evaluation")
    assert evaluation.status_code == 200, evaluation.text
    evaluation = evaluation.json()
    assert sorted(item["label"] for item in evaluation["items"]) == ["anomalous"] * 4 + ["normal"] * 3
    assert (evaluation["normal_count"], evaluation["anomalous_count"]) == (3, 4)
    assert sum(evaluation["histogram"]["normal"]) == 3 and sum(evaluation["histogram"]["anomalous"]) == 4
    assert evaluation["image_auroc"] == pytest.approx(metrics["image_auroc"], abs=1e-6)
    assert evaluation["roc"] and 0.0 <= evaluation["f1_optimal_threshold"] <= 1.0

    run = MlflowClient(tracking_uri(platform.settings)).get_run(model["mlflow_run_id"])
    assert run.data.metrics["aupro"] == pytest.approx(metrics["aupro"])
    assert run.data.metrics["pixel_auroc"] == pytest.approx(metrics["pixel_auroc"])
    assert run.data.tags["pixel_metrics"] == "masks"
