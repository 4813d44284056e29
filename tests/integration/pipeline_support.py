"""Helpers for the source/sink/pipeline/model API tests: rows made through the API (or, for
models and runs, which only training and the inference flow create, straight through the app's database session)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient

from infra.database.models import ActivePipeline, Model

WEBCAM = {"type": "webcam", "name": "USB Camera", "config": {"device_index": 0}}
FOLDER_SINK = {"type": "filesystem", "name": "Local Storage", "config": {"output_dir": "anomalies"}}


def insert_model(client: TestClient, project_id: str, **fields: Any) -> str:
    values = {"name": "PaDiM v1", "architecture": "padim", "status": "ready"} | fields
    with client.app.state.sessionmaker() as session:
        model = Model(project_id=uuid.UUID(project_id), **values)
        session.add(model)
        session.commit()
        return str(model.id)


def create(client: TestClient, project_id: str, resource: str, body: dict) -> dict:
    response = client.post(f"/api/projects/{project_id}/{resource}", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def pipeline_parts(client: TestClient, project_id: str) -> dict[str, str]:
    """A model, a source and a sink of one project, as the id fields of a pipeline body."""
    return {
        "model_id": insert_model(client, project_id),
        "source_id": create(client, project_id, "sources", WEBCAM)["id"],
        "sink_id": create(client, project_id, "sinks", FOLDER_SINK)["id"],
    }


def create_pipeline(client: TestClient, project_id: str, **fields: Any) -> dict:
    body = {"name": "Line monitor"} | pipeline_parts(client, project_id) | fields
    return create(client, project_id, "pipelines", body)


def add_active_row(client: TestClient, pipeline_id: str, status: str, **fields: Any) -> str:
    """A run of the pipeline as the inference flow records it (a flow run id Prefect does not know)."""
    with client.app.state.sessionmaker() as session:
        row = ActivePipeline(pipeline_id=uuid.UUID(pipeline_id), status=status, flow_run_id=uuid.uuid4(), **fields)
        session.add(row)
        session.commit()
        return str(row.id)
