"""MLflow's `basic-auth` app for the supervised MLflow server once it listens beyond loopback.

Its configuration file (no secret in it) and user store live in the data dir; the admin user and
password come from `ServiceCredentials`. MLflow sets the admin password only when it creates the
user, so `sync_admin_password` writes a rotated password into the store before the server starts.
"""

from __future__ import annotations

from pathlib import Path

from infra.credentials import ServiceCredentials

AUTH_CONFIG = "mlflow-auth.ini"
AUTH_DATABASE = "mlflow-auth.db"


def auth_database_uri(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / AUTH_DATABASE}"


def write_auth_config(data_dir: Path) -> Path:
    """The basic-auth app's settings: users other than the admin get no permission unless granted one."""
    path = data_dir / AUTH_CONFIG
    path.write_text("[mlflow]\n"
                    "default_permission = NO_PERMISSIONS\n"
                    f"database_uri = {auth_database_uri(data_dir)}\n"
                    "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    return path


def server_env(data_dir: Path, credentials: ServiceCredentials) -> dict[str, str]:
    """Environment of `mlflow server --app-name basic-auth` (the admin is created from it on first start)."""
    return {"MLFLOW_AUTH_CONFIG_PATH": str(write_auth_config(data_dir)),
            "MLFLOW_AUTH_ADMIN_USERNAME": credentials.mlflow_user,
            "MLFLOW_AUTH_ADMIN_PASSWORD": credentials.mlflow_password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": credentials.mlflow_secret_key}


def sync_admin_password(data_dir: Path, credentials: ServiceCredentials) -> bool:
    """Give an existing admin user the kept password (after a rotation); True when it changed."""
    if not (data_dir / AUTH_DATABASE).exists():
        return False  # the server creates the user with the right password on its first start
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore()
    store.init_db(auth_database_uri(data_dir))
    try:
        user, password = credentials.mlflow_user, credentials.mlflow_password
        if not store.has_user(user, use_primary=True) or store.authenticate_user(user, password, use_primary=True):
            return False
        store.update_user(user, password=password, is_admin=True)
        return True
    finally:
        store.engine.dispose()
