"""MLflow's `champion` alias follows the API's champion, including when the champion is deleted.

A real MLflow store (a SQLite tracking database, MLflow's own code and schema), no server needed:
the API's MLflow client talks to it directly.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from api.app import create_app
from infra.champion import CHAMPION_ALIAS
from tests.integration.pipeline_support import insert_model
from tests.network import free_port

REGISTERED = "Line 1 · PaDiM"


def _alias(mlflow: MlflowClient) -> str | None:
    try:
        return str(mlflow.get_model_version_by_alias(REGISTERED, CHAMPION_ALIAS).version)
    except MlflowException:
        return None


@pytest.fixture
def tracked(tmp_path: Path, make_settings) -> tuple[TestClient, MlflowClient, list[str]]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow = MlflowClient(uri)
    mlflow.create_registered_model(REGISTERED)
    for _ in range(3):
        mlflow.create_model_version(REGISTERED, source=str(tmp_path / "artifacts"))
    settings = make_settings(mlflow_tracking_uri=uri)
    with TestClient(create_app(settings)) as client:
        project = client.post("/api/projects", json={"name": "Line 1"}).json()["id"]
        models = [insert_model(client, project, name=f"PaDiM v{version}", mlflow_model_name=REGISTERED,
                               mlflow_model_version=str(version)) for version in (1, 2, 3)]
        yield client, mlflow, models


def test_deleting_the_champion_removes_its_alias(tracked) -> None:
    client, mlflow, (first, second, third) = tracked
    assert client.post(f"/api/models/{first}/promote").status_code == 200
    assert _alias(mlflow) == "1"

    assert client.delete(f"/api/models/{second}").status_code == 204  # not the champion: alias untouched
    assert _alias(mlflow) == "1"
    assert client.delete(f"/api/models/{first}").status_code == 204
    assert _alias(mlflow) is None
    assert client.get(f"/api/models/{first}").status_code == 404


def test_an_alias_moved_in_mlflow_is_left_alone(tracked) -> None:
    client, mlflow, (first, _, third) = tracked
    assert client.post(f"/api/models/{third}/promote").status_code == 200
    mlflow.set_registered_model_alias(REGISTERED, CHAMPION_ALIAS, "1")  # as from the MLflow UI
    assert client.delete(f"/api/models/{third}").status_code == 204
    assert _alias(mlflow) == "1"


def test_mlflow_unreachable_refuses_the_delete_and_keeps_the_model(make_settings,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings = make_settings(mlflow_tracking_uri=closed)
    with TestClient(create_app(settings)) as client:
        project = client.post("/api/projects", json={"name": "Line 1"}).json()["id"]
        champion = insert_model(client, project, champion=True, mlflow_model_name=REGISTERED,
                                mlflow_model_version="1")
        refused = client.delete(f"/api/models/{champion}")
        assert refused.status_code == 503 and "champion alias" in refused.json()["detail"]
        kept = client.get(f"/api/models/{champion}")
        assert kept.status_code == 200 and kept.json()["champion"] is True
