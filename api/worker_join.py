"""`geti-inspect worker --server URL --api-key K`: join a platform from another host.

The host asks the API for the platform's settings and credentials (`GET /api/cluster/worker-config`),
checks that it reaches each service with them, and becomes a worker whose flows read and write only
the database, the object store, Prefect and MLflow, caching under its own data dir. Anything that
stops it is one line (`JoinError`) naming what to fix.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from api.schemas.cluster import WorkerConfigOut
from infra.credentials import ServiceAuth
from infra.settings import Settings

TIMEOUT_S = 10.0
CONFIG_PATH = "/api/cluster/worker-config"


class JoinError(RuntimeError):
    """Joining failed; the message is the one line to print."""


@dataclass(frozen=True)
class Joined:
    server: str
    config: WorkerConfigOut
    settings: Settings  # this host's: the platform's shared settings, its own data dir and control address
    auth: ServiceAuth

    def storage_env(self) -> dict[str, str]:
        """The S3 credentials the server handed over, as boto3 reads them (none: the host's own)."""
        store = self.config.object_store
        pairs = {"AWS_ACCESS_KEY_ID": store.access_key_id, "AWS_SECRET_ACCESS_KEY": store.secret_access_key,
                 "AWS_SESSION_TOKEN": store.session_token}
        return {name: value for name, value in pairs.items() if value}


def fetch_worker_config(server: str, api_key: str, timeout: float = TIMEOUT_S) -> WorkerConfigOut:
    url = f"{server.rstrip('/').removesuffix('/api')}{CONFIG_PATH}"
    try:
        response = httpx.get(url, headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout)
    except httpx.HTTPError as error:
        raise JoinError(f"cannot reach the Geti Inspect API at {server}: {error or type(error).__name__}") from None
    if response.status_code == 401:
        raise JoinError(f"{server} refused the API key (401): pass the server's INSPECT_API_KEY with --api-key")
    if response.status_code in (403, 409):
        raise JoinError(f"{server} cannot be joined: {_detail(response)}")
    if response.status_code == 404:
        raise JoinError(f"{server} has no {CONFIG_PATH}: is it a Geti Inspect API of the same version?")
    if response.status_code != 200:
        raise JoinError(f"{server} answered {response.status_code} to {CONFIG_PATH}: {_detail(response)}")
    try:
        return WorkerConfigOut.model_validate_json(response.content)
    except ValidationError as error:
        raise JoinError(f"{server} sent a worker configuration this version cannot read: "
                        f"{error.errors()[0]['msg']}") from None


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json()["detail"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]


def local_address_towards(url: str) -> str:
    """The address of this host's interface that reaches `url` (what the server can call back)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    with socket.create_connection((parts.hostname or "", port), timeout=TIMEOUT_S) as connection:
        return connection.getsockname()[0]


def host_settings(config: WorkerConfigOut, data_dir: Path | None, control_host: str) -> Settings:
    """The platform's shared settings plus this host's own (data dir, and INSPECT_* set here for local matters)."""
    store = config.object_store
    shared = {key.removeprefix("INSPECT_").lower(): value for key, value in config.settings.items()}
    own: dict[str, object] = {"data_dir": data_dir} if data_dir is not None else {}
    if "INSPECT_PIPELINE_CONTROL_HOST" not in os.environ:  # else the operator knows better (NAT, several NICs)
        own |= {"pipeline_control_host": control_host, "pipeline_control_advertise_host": control_host}
    return Settings(**shared, **own, database_url=config.database_url, storage_backend=store.backend,
                    s3_endpoint_url=store.endpoint_url, s3_bucket=store.bucket, s3_prefix=store.prefix,
                    s3_region=store.region, prefect_api_url=config.prefect.api_url,
                    mlflow_tracking_uri=config.mlflow.tracking_uri)


def check_reachable(joined: Joined) -> None:
    """Each service answers this host with the credentials it got; else one line saying which does not."""
    from infra.orchestration.client import prefect_client

    config = joined.config
    try:
        with prefect_client(config.prefect.api_url, joined.auth, httpx_settings={"timeout": TIMEOUT_S}) as client:
            client.read_work_pools()
    except Exception as error:  # noqa: BLE001 - any failure is reported the same way
        raise JoinError(f"cannot use Prefect at {config.prefect.api_url} from this host: "
                        f"{_first_line(error)}") from None
    try:
        response = httpx.get(f"{config.mlflow.tracking_uri}/api/2.0/mlflow/experiments/search",
                             params={"max_results": 1}, timeout=TIMEOUT_S,
                             auth=(joined.auth.mlflow_username, joined.auth.mlflow_password or "")
                             if joined.auth.mlflow_username else None)
        response.raise_for_status()
    except httpx.HTTPError as error:
        raise JoinError(f"cannot use MLflow at {config.mlflow.tracking_uri} from this host: {error}") from None
    _check_database(config.database_url)
    _check_object_store(joined)


def _check_database(url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": int(TIMEOUT_S)})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:  # noqa: BLE001
        where = make_url(url).render_as_string(hide_password=True)
        raise JoinError(f"cannot use the database {where} from this host: {_first_line(error)}") from None
    finally:
        engine.dispose()


def _check_object_store(joined: Joined) -> None:
    import boto3
    from botocore.config import Config

    store = joined.config.object_store
    env = joined.storage_env()
    client = boto3.client("s3", endpoint_url=store.endpoint_url, region_name=store.region,
                          aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
                          aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
                          aws_session_token=env.get("AWS_SESSION_TOKEN"),
                          config=Config(connect_timeout=TIMEOUT_S, read_timeout=TIMEOUT_S, retries={"max_attempts": 1}))
    try:
        client.head_bucket(Bucket=store.bucket)
    except Exception as error:  # noqa: BLE001
        raise JoinError(f"cannot use the bucket {store.bucket!r} at {store.endpoint_url or 'AWS'} from this host: "
                        f"{_first_line(error)}") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def join(server: str, api_key: str, data_dir: Path | None) -> Joined:
    """Fetch the platform's configuration, derive this host's settings and check every service answers."""
    config = fetch_worker_config(server, api_key)
    control_host = local_address_towards(server)
    auth = ServiceAuth(config.prefect.auth_string, config.mlflow.username, config.mlflow.password)
    joined = Joined(server, config, host_settings(config, data_dir, control_host), auth)
    check_reachable(joined)
    return joined
