"""Training through the HTTP API alone, on synthetic parts: snapshot, train, track, export, infer.

PaDiM with the offline mobilenetv2_100 weights on a small set (40 good parts, 16 defective):
the job's progress only grows and ends at 1, the model ends ready with a meaningful image AUROC
(fitted on the snapshot's train normals, scored on its eval split, never on unlabelled images),
MLflow holds the run and a registered version, and every export format downloads as a zip whose
OpenVINO IR, the thing a line runs, scores cracks it never saw above good parts it never saw.
"""

from __future__ import annotations

import io
import math
import zipfile

import numpy as np
import pytest
from PIL import Image

from tests.integration.media_support import part_files
from tests.platform_fixtures import TrainedModel, follow_job

pytestmark = pytest.mark.slow

EXPECTED_FILES = {
    ("openvino", None): {"model.xml", "model.bin"},
    ("openvino", "fp16"): {"model.xml", "model.bin"},
    ("onnx", None): {"model.onnx"},
    ("pytorch", None): {"model.pt", "model.ckpt"},
}
OPTIONAL_FILES = {"model.onnx.data"}  # torch writes large ONNX weights beside the graph


def _duration(job: dict) -> float:
    from datetime import datetime

    return (datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["created_at"])).total_seconds()


def _score(xml: bytes, weights: bytes, image: bytes) -> float:
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(xml, weights), "CPU")
    pixels = np.asarray(Image.open(io.BytesIO(image)).convert("RGB").resize((256, 256)), dtype=np.float32) / 255.0
    outputs = compiled(pixels.transpose(2, 0, 1)[None])
    by_name = {name: value for output, value in outputs.items() for name in output.get_names()}
    return float(np.asarray(by_name["pred_score"]).reshape(-1)[0])


def test_train_padim_and_export_everything(platform, platform_client, part_images, trained_model: TrainedModel):
    """The session's `trained_model` is this training: 40 good parts (2 relabelled unlabelled), 16 defects."""
    client = platform_client
    counts, accepted, job, progress = (trained_model.counts, trained_model.accepted, trained_model.job,
                                       trained_model.progress)
    unseen_good = [data for _, data in part_files(part_images, "Free", 46)[40:]]
    unseen_cracks = [data for _, data in part_files(part_images, "Crack", 12)[8:]]
    assert counts[("anomalous", "train")] == 0 and counts[("normal", "eval")] >= 4
    print(f"training job: {_duration(job):.1f} s, metrics {job['metrics']}")
    assert job["status"] == "completed", job
    assert progress == sorted(progress) and progress[-1] == 1.0, progress
    assert job["metrics"]["stage"] == "done" and job["metrics"]["image_auroc"] > 0.7

    model = client.get(f"/api/models/{accepted['model_id']}").json()
    print("metrics", model["metrics"])
    assert model["status"] == "ready" and model["error"] is None
    assert model["metrics"]["image_auroc"] > 0.7 and 0 <= model["metrics"]["image_f1"] <= 1
    assert model["mlflow_run_id"] and model["mlflow_model_version"] == "1"
    # Fitted on the snapshot's train normals, evaluated on its eval normals and anomalous images.
    assert model["metrics"]["snapshot_id"] == accepted["snapshot_id"]
    assert model["metrics"]["train_images"] == counts[("normal", "train")]
    assert model["metrics"]["eval_images"] == counts[("normal", "eval")] + 16
    snapshot = client.get(f"/api/snapshots/{accepted['snapshot_id']}").json()
    assert snapshot["status"] == "ready" and snapshot["media_count"] == 56

    from mlflow import MlflowClient

    from infra.tracking import tracking_uri

    mlflow = MlflowClient(tracking_uri(platform.settings))
    run = mlflow.get_run(model["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.params["backbone"] == "mobilenetv2_100"
    assert run.data.metrics["image_auroc"] == pytest.approx(model["metrics"]["image_auroc"])
    assert {item.path for item in mlflow.list_artifacts(run.info.run_id)} == {"openvino", "checkpoint",
                                                                               "evaluation"}
    version = mlflow.get_model_version(model["mlflow_model_name"], model["mlflow_model_version"])
    assert version.run_id == run.info.run_id and version.source.endswith("/openvino")

    # Every format: 202 with a job until the archive exists, then 200 with the zip. (The first request for an
    # archive is recorded by `trained_model`: another test may have made it, and it still has to have been a 202.)
    exports = {}
    for fmt, compression in EXPECTED_FILES:
        params = {"format": fmt, **({"compression": compression} if compression else {})}
        first = trained_model.first_export_answer(client, fmt, compression)
        assert first.status_code == 202, first.text
        again = client.get(f"/api/models/{model['id']}/export", params=params)
        assert again.status_code == 200 or again.json()["job_id"] == first.json()["job_id"]
        exports[(fmt, compression)] = (params, first.json()["job_id"])
    for (fmt, compression), (params, job_id) in exports.items():
        job, _ = follow_job(client, job_id)
        print(f"export {fmt} {compression}: {_duration(job):.1f} s")
        assert job["status"] == "completed" and job["type"] == "export", job
        download = client.get(f"/api/models/{model['id']}/export", params=params)
        assert download.status_code == 200 and download.headers["content-type"] == "application/zip"
        archive = zipfile.ZipFile(io.BytesIO(download.content))
        assert set(archive.namelist()) - OPTIONAL_FILES == EXPECTED_FILES[(fmt, compression)], archive.namelist()
        if fmt == "openvino":
            good = [_score(archive.read("model.xml"), archive.read("model.bin"), image) for image in unseen_good]
            cracks = [_score(archive.read("model.xml"), archive.read("model.bin"), image) for image in unseen_cracks]
            print(f"{fmt} {compression}: good {[round(v, 3) for v in good]}, cracks {[round(v, 3) for v in cracks]}")
            assert all(math.isfinite(score) and 0 <= score <= 1 for score in good + cracks)
            assert min(cracks) > max(good), (good, cracks)  # every unseen crack above every unseen good part

    bad = client.get(f"/api/models/{model['id']}/export", params={"format": "onnx", "compression": "int8"})
    assert bad.status_code == 422
    assert client.get(f"/api/models/{model['id']}/export", params={"format": "tflite"}).status_code == 422
