"""Credentials of exposed services: generated once, kept 0600, presented by every client, never on loopback-only."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from infra.credentials import (
    MLFLOW_PASSWORD_ENV,
    PREFECT_AUTH_ENV,
    ServiceAuth,
    ServiceCredentials,
    client_auth,
    credentials_path,
    load_credentials,
    load_or_create_credentials,
)
from infra.settings import Settings
from infra.supervisor.stack import Stack, StackOptions, worker_spec


@pytest.fixture(autouse=True)
def _no_operator_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (PREFECT_AUTH_ENV, "MLFLOW_TRACKING_USERNAME", MLFLOW_PASSWORD_ENV):
        monkeypatch.delenv(name, raising=False)


def test_generated_once_and_kept_owner_only(tmp_path: Path):
    first = load_or_create_credentials(tmp_path)
    path = credentials_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_credentials(tmp_path) == first == load_credentials(tmp_path)
    assert len(first.prefect_password) >= 24 and first.prefect_password != first.mlflow_password
    assert not list(tmp_path.glob(".*")), "no staging file left behind"
    path.unlink()  # rotation: delete the file, restart serve
    assert load_or_create_credentials(tmp_path) != first


def test_a_file_readable_by_others_is_tightened(tmp_path: Path):
    load_or_create_credentials(tmp_path)
    credentials_path(tmp_path).chmod(0o644)
    load_credentials(tmp_path)
    assert stat.S_IMODE(credentials_path(tmp_path).stat().st_mode) == 0o600


def test_loopback_only_changes_nothing(tmp_path: Path):
    stack = Stack(Settings(data_dir=tmp_path))
    assert stack.credentials is None and stack.auth == ServiceAuth()
    prefect, mlflow = stack._prefect_server_spec(), stack._mlflow_server_spec()  # noqa: SLF001
    assert "PREFECT_SERVER_API_AUTH_STRING" not in prefect.env and "basic-auth" not in mlflow.argv
    assert not credentials_path(tmp_path).exists()


@pytest.mark.parametrize("exposure", [{"host": "0.0.0.0"}, {"expose": True},  # noqa: S104
                                      {"services_host": "10.0.0.5"}])
def test_exposed_servers_require_the_kept_credentials(tmp_path: Path, exposure: dict):
    stack = Stack(Settings(data_dir=tmp_path, **exposure))
    kept = load_credentials(tmp_path)
    assert kept is not None and stack.credentials == kept
    prefect, mlflow = stack._prefect_server_spec(), stack._mlflow_server_spec()  # noqa: SLF001
    assert prefect.env["PREFECT_SERVER_API_AUTH_STRING"] == kept.prefect_auth_string
    assert prefect.env["PREFECT_UI_API_URL"] == "/api", "the UI must work from any host name"
    assert mlflow.argv[mlflow.argv.index("--app-name") + 1] == "basic-auth"
    assert mlflow.env["MLFLOW_AUTH_ADMIN_PASSWORD"] == kept.mlflow_password
    assert kept.mlflow_password not in (tmp_path / "mlflow-auth.ini").read_text()
    # Workers, and through them every flow process, present them.
    worker = stack._worker_spec("training")  # noqa: SLF001
    assert worker.env[PREFECT_AUTH_ENV] == kept.prefect_auth_string
    assert worker.env[MLFLOW_PASSWORD_ENV] == kept.mlflow_password


def test_external_services_take_the_operators_credentials(tmp_path: Path):
    kept = ServiceCredentials.generate()
    operator = ServiceAuth("ops:secret", "ml", "pw")
    external = Settings(data_dir=tmp_path, prefect_api_url="http://ops:4200/api", mlflow_tracking_uri="http://ops:5000")
    assert client_auth(external, kept, operator) == operator
    assert client_auth(Settings(data_dir=tmp_path), kept, operator) == kept.auth
    assert client_auth(Settings(data_dir=tmp_path), None, operator) == operator


def test_a_joined_workers_credentials_reach_its_flow_processes(tmp_path: Path):
    auth = ServiceAuth("inspect:p", "inspect", "m")
    spec = worker_spec(Settings(data_dir=tmp_path), "inference", None, prefect_api="http://s:4200/api",
                       mlflow_uri="http://s:5000", options=StackOptions(), auth=auth)
    assert {key: spec.env[key] for key in auth.client_env()} == auth.client_env()


def test_a_rotated_mlflow_password_is_written_into_the_user_store(tmp_path: Path):
    """MLflow sets the admin password only when it creates the user: a rotation must reach its store."""
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    from infra.supervisor.mlflow_auth import auth_database_uri, sync_admin_password

    old = ServiceCredentials.generate()
    assert not sync_admin_password(tmp_path, old), "no store yet: the server creates the user itself"
    store = SqlAlchemyStore()
    store.init_db(auth_database_uri(tmp_path))
    store.create_user(old.mlflow_user, old.mlflow_password, is_admin=True)
    new = ServiceCredentials.generate()
    assert sync_admin_password(tmp_path, new) and not sync_admin_password(tmp_path, new)
    assert store.authenticate_user(new.mlflow_user, new.mlflow_password, use_primary=True)
    assert not store.authenticate_user(old.mlflow_user, old.mlflow_password, use_primary=True)
    store.engine.dispose()
