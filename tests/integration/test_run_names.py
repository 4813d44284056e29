"""Flow run names from the database: what each run is, in the words of the project."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from flows import run_names
from infra.database.models import ActivePipeline, Model, Pipeline, Project, Sink, Snapshot, Source
from infra.settings import Settings


@pytest.fixture
def rows(client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A project with a model, a snapshot and an active pipeline; flows read the same database."""
    monkeypatch.setenv("INSPECT_DATA_DIR", str(settings.resolved_data_dir))
    with client.app.state.sessionmaker() as session:
        project = Project(name="Line 3")
        session.add(project)
        session.flush()
        model = Model(project_id=project.id, name="v7", architecture="padim")
        snapshot = Snapshot(project_id=project.id, name="s1")
        source = Source(project_id=project.id, type="video_file", name="clip")
        sink = Sink(project_id=project.id, type="filesystem", name="disk")
        session.add_all([model, snapshot, source, sink])
        session.flush()
        pipeline = Pipeline(project_id=project.id, name="Gate camera", model_id=model.id, source_id=source.id,
                            sink_id=sink.id)
        session.add(pipeline)
        session.flush()
        active = ActivePipeline(pipeline_id=pipeline.id)
        session.add(active)
        session.commit()
        return {"model": str(model.id), "snapshot": str(snapshot.id), "active": str(active.id),
                "project": str(project.id)}


def name_with(monkeypatch: pytest.MonkeyPatch, namer, **parameters: object) -> str:
    monkeypatch.setattr(run_names, "flow_run", SimpleNamespace(parameters=parameters))
    return namer()


def test_each_flow_names_its_run_after_what_it_works_on(rows, monkeypatch) -> None:
    assert name_with(monkeypatch, run_names.training_run_name, model_id=rows["model"]) == "train · v7 · Line 3"
    assert name_with(monkeypatch, run_names.export_run_name, model_id=rows["model"], format="onnx",
                     compression=None) == "export · onnx · v7"
    assert name_with(monkeypatch, run_names.export_run_name, model_id=rows["model"], format="openvino",
                     compression="int8") == "export · openvino-int8 · v7"
    assert name_with(monkeypatch, run_names.snapshot_run_name, snapshot_id=rows["snapshot"]) == "snapshot · Line 3"
    assert name_with(monkeypatch, run_names.pipeline_run_name,
                     active_pipeline_id=rows["active"]) == "pipeline · Gate camera · Line 3"
    assert name_with(monkeypatch, run_names.import_run_name, project_id=rows["project"]) == "import · Line 3"


def test_a_missing_row_names_the_run_by_its_short_id_instead_of_failing(rows, monkeypatch) -> None:
    gone = str(uuid.uuid4())
    assert name_with(monkeypatch, run_names.training_run_name, model_id=gone) == f"train · {gone[:8]}"
    assert name_with(monkeypatch, run_names.pipeline_run_name, active_pipeline_id=gone) == f"pipeline · {gone[:8]}"
    assert name_with(monkeypatch, run_names.snapshot_run_name, snapshot_id="not-a-uuid") == "snapshot · not-a-uu"
