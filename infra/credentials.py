"""Credentials of the Prefect and MLflow servers once they listen beyond loopback.

`serve` generates them once and keeps them in the data dir (`service-credentials.json`, mode 0600),
so a restart keeps them and workers that joined stay valid. Clients present them through each
tool's own variables (`PREFECT_API_AUTH_STRING`, `MLFLOW_TRACKING_USERNAME`/`_PASSWORD`): that is
where Prefect's and MLflow's own clients in flow processes look, and every child inherits them.
Rotating = deleting the file and restarting `serve`, then the workers (docs/deployment.md).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from infra.settings import Settings

log = logging.getLogger(__name__)

CREDENTIALS_FILE = "service-credentials.json"
PREFECT_AUTH_ENV = "PREFECT_API_AUTH_STRING"
MLFLOW_USER_ENV = "MLFLOW_TRACKING_USERNAME"
MLFLOW_PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"  # noqa: S105 - the variable's name, not a password
SERVICE_USER = "inspect"


@dataclass(frozen=True)
class ServiceAuth:
    """What a client presents to Prefect and MLflow; None where that server has no login."""

    prefect_auth_string: str | None = None  # `user:password`, sent as HTTP basic auth
    mlflow_username: str | None = None
    mlflow_password: str | None = None

    def client_env(self) -> dict[str, str]:
        pairs = {PREFECT_AUTH_ENV: self.prefect_auth_string, MLFLOW_USER_ENV: self.mlflow_username,
                 MLFLOW_PASSWORD_ENV: self.mlflow_password}
        return {name: value for name, value in pairs.items() if value}

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> ServiceAuth:
        environ = os.environ if environ is None else environ
        return cls(environ.get(PREFECT_AUTH_ENV) or None, environ.get(MLFLOW_USER_ENV) or None,
                   environ.get(MLFLOW_PASSWORD_ENV) or None)

    def install(self) -> None:
        """Make these the process's own client credentials (composition roots only: serve, api, worker).

        MLflow's client reads them from the environment at each request, Prefect clients made by the
        platform read them through `ServiceAuth.from_environ`, and child processes inherit them.
        """
        os.environ.update(self.client_env())


@dataclass(frozen=True)
class ServiceCredentials:
    """The secrets `serve` keeps for the services it exposes."""

    prefect_user: str
    prefect_password: str
    mlflow_user: str
    mlflow_password: str
    # Flask's session/CSRF key of MLflow's basic-auth app: static, or its login pages break on restart.
    mlflow_secret_key: str

    @property
    def prefect_auth_string(self) -> str:
        return f"{self.prefect_user}:{self.prefect_password}"

    @property
    def auth(self) -> ServiceAuth:
        return ServiceAuth(self.prefect_auth_string, self.mlflow_user, self.mlflow_password)

    @classmethod
    def generate(cls) -> ServiceCredentials:
        return cls(SERVICE_USER, secrets.token_urlsafe(24), SERVICE_USER, secrets.token_urlsafe(24),
                   secrets.token_urlsafe(32))


def credentials_path(data_dir: Path) -> Path:
    return data_dir / CREDENTIALS_FILE


def load_credentials(data_dir: Path) -> ServiceCredentials | None:
    """The kept credentials, or None when none were generated in this data dir yet."""
    path = credentials_path(data_dir)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise RuntimeError(f"{path} is unreadable ({error}); delete it to generate new credentials") from error
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        path.chmod(0o600)
        log.warning("%s was readable by others (mode %o): now 0600; rotate the credentials if others read it",
                    path, mode)
    try:
        return ServiceCredentials(**{field.name: str(raw[field.name]) for field in fields(ServiceCredentials)})
    except (KeyError, TypeError) as error:
        raise RuntimeError(f"{path} lacks {error}; delete it to generate new credentials") from error


def load_or_create_credentials(data_dir: Path) -> ServiceCredentials:
    """Credentials generated once per data dir and kept there with mode 0600 (created atomically)."""
    found = load_credentials(data_dir)
    if found is not None:
        return found
    data_dir.mkdir(parents=True, exist_ok=True)
    created = ServiceCredentials.generate()
    path = credentials_path(data_dir)
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            json.dump(asdict(created), file, indent=2)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(staging, path)  # never replaces credentials another process wrote meanwhile
        except FileExistsError:
            return load_or_create_credentials(data_dir)
    finally:
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
    log.info("generated service credentials in %s (mode 0600)", path)
    return created


def client_auth(settings: Settings, kept: ServiceCredentials | None, environ_auth: ServiceAuth | None = None
                ) -> ServiceAuth:
    """What a process presents: the kept credentials to the servers `serve` supervises (no external address
    configured), the operator's variables (`environ_auth`, default this process's) to external ones."""
    environ_auth = ServiceAuth.from_environ() if environ_auth is None else environ_auth
    if kept is None:
        return environ_auth
    prefect = kept.prefect_auth_string if settings.prefect_api_url is None else environ_auth.prefect_auth_string
    mlflow = ((kept.mlflow_user, kept.mlflow_password) if settings.mlflow_tracking_uri is None
              else (environ_auth.mlflow_username, environ_auth.mlflow_password))
    return ServiceAuth(prefect, *mlflow)
