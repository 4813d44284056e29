"""The inference flow's database side on real SQLite: what it reads at start, what it writes each second."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from flows.inference import ConfigWatcher, PipelineFlowError, StatusWriter, load_spec
from infra.database.models import ActivePipeline, Model
from infra.model_cache import ModelCache
from infra.model_files import openvino_prefix, upload_folder
from infra.settings import Settings
from pipelines.runtime import PipelineRuntime
from tests.integration.pipeline_support import create_pipeline, insert_model

pytest_plugins = ["tests.integration.pipeline_fixtures"]

METRICS = {"frames_processed": 5, "anomalies_detected": 1, "avg_inference_time_ms": 20.0, "fps": 9.5,
           "sink_errors": 0}


def add_active(client: TestClient, pipeline_id: str, status: str = "starting") -> uuid.UUID:
    with client.app.state.sessionmaker() as session:
        row = ActivePipeline(pipeline_id=uuid.UUID(pipeline_id), status=status)
        session.add(row)
        session.commit()
        return row.id


def read(client: TestClient, active_id: uuid.UUID) -> ActivePipeline:
    with client.app.state.sessionmaker() as session:
        return session.get(ActivePipeline, active_id)


def test_load_spec_reads_the_rows_of_a_starting_pipeline(client: TestClient, project: dict, settings: Settings) -> None:
    pipeline = create_pipeline(client, project["id"], config={"threshold": 0.7, "fps": 5})
    active_id = add_active(client, pipeline["id"])
    spec = load_spec(settings.resolved_database_url, active_id)
    assert spec is not None
    assert str(spec.model_id) == pipeline["model_id"] and spec.source_type == "webcam"
    assert spec.sink.type == "filesystem" and spec.config.threshold == 0.7 and spec.config.fps == 5

    other = create_pipeline(client, project["id"])  # one live row per pipeline
    stopped = add_active(client, other["id"], status="stopping")  # stopped before its run began
    assert load_spec(settings.resolved_database_url, stopped) is None
    with pytest.raises(PipelineFlowError, match="does not exist"):
        load_spec(settings.resolved_database_url, uuid.uuid4())

    with client.app.state.sessionmaker() as session:
        session.get(Model, uuid.UUID(pipeline["model_id"])).status = "failed"
        session.commit()
    with pytest.raises(PipelineFlowError, match="failed, not ready"):
        load_spec(settings.resolved_database_url, active_id)


def test_status_writer_records_metrics_heartbeat_and_live_trouble(client: TestClient, project: dict,
                                                                  settings: Settings) -> None:
    active_id = add_active(client, create_pipeline(client, project["id"])["id"], status="running")
    writer = StatusWriter(settings.resolved_database_url, active_id)

    writer({"state": "running", "metrics": METRICS, "source": {"state": "connected", "error": None}})
    row = read(client, active_id)
    assert row.metrics == METRICS and row.heartbeat_at is not None and row.message is None
    first_beat = row.heartbeat_at

    writer({"state": "running", "metrics": METRICS,
            "source": {"state": "reconnecting", "error": "connection refused"}})
    row = read(client, active_id)
    assert row.status == "running" and row.message == "source reconnecting: connection refused"
    assert row.heartbeat_at >= first_beat

    writer.note("model", "model X is training; still using Y")
    writer({"state": "running", "metrics": METRICS, "source": {"state": "connected", "error": None}})
    assert read(client, active_id).message == "model X is training; still using Y"
    writer.note("model", None)
    writer({"state": "running", "metrics": {**METRICS, "frames_processed": 9}, "source": {}})
    row = read(client, active_id)
    assert row.message is None and row.metrics["frames_processed"] == 9


def test_status_writer_never_reopens_a_finished_pipeline(client: TestClient, project: dict,
                                                         settings: Settings) -> None:
    active_id = add_active(client, create_pipeline(client, project["id"])["id"], status="failed")
    writer = StatusWriter(settings.resolved_database_url, active_id)
    writer({"state": "running", "metrics": METRICS, "source": {"state": "reconnecting", "error": "down"}})
    row = read(client, active_id)
    assert row.status == "failed" and row.message is None  # final metrics land, the status stays
    assert row.metrics == METRICS


def test_a_model_threshold_follows_the_model(client: TestClient, project: dict, settings: Settings,
                                             model_dir: Path, part_video: Path, tmp_path: Path) -> None:
    """`"threshold": "model"`: the running line takes each model's own threshold with it when the model
    changes (as a champion swap does), until a number is set; a real runtime and real IR files."""
    store = client.app.state.store
    older = insert_model(client, project["id"])  # trained before thresholds were recorded: anomalib's 0.5
    newer = insert_model(client, project["id"], name="PaDiM v2", metrics={"threshold": 0.35})
    for model_id in (older, newer):
        upload_folder(store, model_dir, openvino_prefix(model_id))
    pipeline = create_pipeline(client, project["id"], model_id=older, config={"threshold": "model", "fps": 5})
    active_id = add_active(client, pipeline["id"])
    spec = load_spec(settings.resolved_database_url, active_id)
    assert spec.config.threshold == "model" and spec.runtime_config().threshold == 0.5
    models = ModelCache(store, tmp_path / "cache")
    runtime = PipelineRuntime.from_config(
        pipeline_id=pipeline["id"], active_pipeline_id=str(active_id), source_type="video_file",
        source_name="line", source_config={"path": str(part_video)}, sinks=[], model_dir=models.get(older),
        config=spec.runtime_config())
    watcher = ConfigWatcher(spec, runtime, models, StatusWriter(settings.resolved_database_url, active_id),
                            settings.resolved_database_url)

    def patch_and_poll(body: dict) -> dict:
        assert client.patch(f"/api/pipelines/{pipeline['id']}", json=body).status_code == 200
        assert watcher.poll()
        return runtime.status()

    status = patch_and_poll({"model_id": newer})
    assert status["config"]["threshold"] == 0.35 and newer in status["model"]["path"]
    assert patch_and_poll({"config": {"threshold": 0.8}})["config"]["threshold"] == 0.8
    status = patch_and_poll({"model_id": older})  # a number stays put across a model change
    assert status["config"]["threshold"] == 0.8 and older in status["model"]["path"]
    assert patch_and_poll({"config": {"threshold": "model"}})["config"]["threshold"] == 0.5
