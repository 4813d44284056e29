"""What a joining host receives, and what it refuses to hand out: only state other hosts can reach."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.services.worker_config import NotJoinable, worker_config
from api.worker_join import host_settings
from infra.credentials import ServiceAuth
from infra.settings import Settings
from tests.machines import AWS_OVERRIDES, DUMMY_AWS

SHARED = {"database_url": "postgresql+psycopg://inspect:pw@10.0.0.5:5432/inspect", "storage_backend": "s3",
          "s3_endpoint_url": "http://10.0.0.5:9000", "s3_bucket": "parts", "s3_prefix": "plant-1",
          "host": "10.0.0.5", "outbound_allow": "hooks.plant"}
AUTH = ServiceAuth("inspect:prefect-pw", "inspect", "mlflow-pw")


@pytest.fixture(autouse=True)
def _aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in DUMMY_AWS.items():
        monkeypatch.setenv(name, value)
    for name in AWS_OVERRIDES:
        monkeypatch.delenv(name, raising=False)


def test_a_platform_on_postgresql_and_s3_hands_out_everything_a_worker_needs(tmp_path: Path):
    config = worker_config(Settings(data_dir=tmp_path, **SHARED), AUTH, "10.0.0.5")
    assert config.prefect.api_url == "http://10.0.0.5:4200/api"
    assert config.prefect.auth_string == "inspect:prefect-pw"
    assert (config.mlflow.tracking_uri, config.mlflow.username, config.mlflow.password) == (
        "http://10.0.0.5:5000", "inspect", "mlflow-pw")
    assert config.database_url == SHARED["database_url"], "the password travels: the worker connects with it"
    assert (config.object_store.bucket, config.object_store.prefix) == ("parts", "plant-1")
    assert (config.object_store.access_key_id, config.object_store.secret_access_key) == ("testing", "testing")
    assert config.settings["INSPECT_OUTBOUND_ALLOW"] == "hooks.plant"
    assert "INSPECT_DATA_DIR" not in config.settings and "INSPECT_ALLOWED_PATHS" not in config.settings


def test_the_services_are_named_as_the_worker_reached_the_api(tmp_path: Path):
    config = worker_config(Settings(data_dir=tmp_path, **{**SHARED, "host": "0.0.0.0"}), AUTH,  # noqa: S104
                           "inspect.plant")
    assert config.prefect.api_url == "http://inspect.plant:4200/api"
    external = Settings(data_dir=tmp_path, **SHARED, prefect_api_url="http://ops:4200/api",
                        mlflow_tracking_uri="http://ops:5000")
    assert worker_config(external, AUTH, "10.0.0.5").prefect.api_url == "http://ops:4200/api"


@pytest.mark.parametrize(("change", "reason"), [
    ({"database_url": ""}, "SQLite"),
    ({"storage_backend": "local"}, "storage folder"),
    ({"host": "127.0.0.1"}, "loopback only"),
    ({"database_url": "postgresql+psycopg://inspect@localhost/inspect"}, "INSPECT_DATABASE_URL"),
    ({"s3_endpoint_url": "http://127.0.0.1:9000"}, "INSPECT_S3_ENDPOINT_URL"),
    ({"prefect_api_url": "http://127.0.0.1:4200/api", "mlflow_tracking_uri": "http://10.0.0.6:5000"},
     "INSPECT_PREFECT_API_URL"),
])
def test_state_other_hosts_cannot_reach_is_refused_with_the_reason(tmp_path: Path, change: dict, reason: str):
    with pytest.raises(NotJoinable, match=reason):
        worker_config(Settings(data_dir=tmp_path, **{**SHARED, **change}), AUTH, "10.0.0.5")


def test_the_worker_keeps_its_own_data_dir_and_control_address(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("INSPECT_PIPELINE_CONTROL_HOST", raising=False)
    monkeypatch.setenv("INSPECT_TRAINING_CONCURRENCY", "2")  # a local matter, set on the worker host
    config = worker_config(Settings(data_dir=tmp_path / "server", **SHARED), AUTH, "10.0.0.5")
    settings = host_settings(config, tmp_path / "worker", "10.0.0.21")
    assert settings.resolved_data_dir == (tmp_path / "worker").resolve()
    assert settings.resolved_database_url == SHARED["database_url"]
    assert (settings.storage_backend, settings.s3_bucket, settings.s3_prefix) == ("s3", "parts", "plant-1")
    assert settings.prefect_api_url == "http://10.0.0.5:4200/api"
    assert settings.pipeline_control_host == settings.pipeline_control_advertise_host == "10.0.0.21"
    assert settings.outbound_allow == "hooks.plant" and settings.training_concurrency == 2
