"""The settings and credentials a joining host gets (`GET /api/cluster/worker-config`).

Only a platform whose state other hosts can reach can be joined: PostgreSQL (not a SQLite file on
the server), S3 (not the server's storage folder), and Prefect and MLflow at addresses beyond the
server's loopback. Anything else is refused with the reason, so `geti-inspect worker` can say it in
one line instead of joining a platform whose jobs would then fail on the worker.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy.engine import make_url

from api.schemas.cluster import MlflowAccess, ObjectStoreAccess, PrefectAccess, WorkerConfigOut
from infra.credentials import ServiceAuth
from infra.settings import Settings, is_loopback
from infra.ui_links import ui_links

# Settings the flows apply that must be the same on every host (the rest are the host's own: its data dir,
# allowed paths, worker start mode, training slots, control endpoint address).
PLATFORM_SETTINGS = ("min_normal_images", "max_collected_media", "thumbnail_size", "patchcore_exact_coreset_limit",
                     "outbound_allow")
HEARTBEAT_SECONDS = 30  # StackOptions.heartbeat_seconds: Prefect's minimum


class NotJoinable(RuntimeError):
    """The platform keeps state that other hosts cannot reach (the reason is the message)."""


def _refuse_loopback(what: str, host: str | None, setting: str) -> None:
    if host is not None and is_loopback(host):
        raise NotJoinable(f"the server's {what} is at {host}, its own loopback, which other hosts cannot reach: "
                          f"give {setting} an address they can")


def _object_store(settings: Settings) -> ObjectStoreAccess:
    import boto3

    resolved = boto3.session.Session().get_credentials()  # env, config files or an instance role, as boto3 finds them
    frozen = resolved.get_frozen_credentials() if resolved is not None else None
    return ObjectStoreAccess(backend="s3", endpoint_url=settings.s3_endpoint_url, bucket=settings.s3_bucket,
                             prefix=settings.s3_prefix, region=settings.s3_region,
                             access_key_id=frozen.access_key if frozen else None,
                             secret_access_key=frozen.secret_key if frozen else None,
                             session_token=frozen.token if frozen else None)


def worker_config(settings: Settings, auth: ServiceAuth, api_host: str) -> WorkerConfigOut:
    """The join answer for a host that reached this API as `api_host`; NotJoinable when it cannot work."""
    database = settings.resolved_database_url
    if make_url(database).get_backend_name() == "sqlite":
        raise NotJoinable("the platform's database is SQLite, a file on the server: other hosts can join only a "
                          "platform on PostgreSQL (INSPECT_DATABASE_URL)")
    if settings.storage_backend != "s3":
        raise NotJoinable("the platform keeps its media and models in the server's storage folder: other hosts can "
                          "join only a platform on S3 (INSPECT_STORAGE_BACKEND=s3)")
    if (settings.prefect_api_url is None or settings.mlflow_tracking_uri is None) and not settings.exposed:
        raise NotJoinable("the server's Prefect and MLflow listen on loopback only: start `serve` with --host "
                          "<address> or INSPECT_EXPOSE=1")
    # A database on a Unix socket (no host) is refused by the worker's own connection check.
    _refuse_loopback("database", make_url(database).host, "INSPECT_DATABASE_URL")
    for what, url, setting in (("S3 endpoint", settings.s3_endpoint_url, "INSPECT_S3_ENDPOINT_URL"),
                               ("Prefect API", settings.prefect_api_url, "INSPECT_PREFECT_API_URL"),
                               ("MLflow server", settings.mlflow_tracking_uri, "INSPECT_MLFLOW_TRACKING_URI")):
        _refuse_loopback(what, urlsplit(url).hostname if url else None, setting)

    # The supervised servers are reached at their own address, or, where they listen on every interface, by the
    # host name this worker used for the API.
    host = settings.services_address if settings.services_address != "127.0.0.1" else (
        f"[{api_host}]" if ":" in api_host else api_host)
    prefect = settings.prefect_api_url or f"http://{host}:{settings.prefect_port}/api"
    mlflow = settings.mlflow_tracking_uri or f"http://{host}:{settings.mlflow_port}"
    links = ui_links(settings, api_host)
    shared = {f"INSPECT_{name.upper()}": getattr(settings, name) for name in PLATFORM_SETTINGS}
    shared |= {"INSPECT_PREFECT_UI_URL": links.prefect_ui, "INSPECT_MLFLOW_UI_URL": links.mlflow_ui}
    from api import __version__

    return WorkerConfigOut(
        server_version=__version__,
        prefect=PrefectAccess(api_url=prefect, auth_string=auth.prefect_auth_string),
        mlflow=MlflowAccess(tracking_uri=mlflow, username=auth.mlflow_username, password=auth.mlflow_password),
        database_url=make_url(database).render_as_string(hide_password=False),
        object_store=_object_store(settings),
        settings=shared,
        heartbeat_seconds=HEARTBEAT_SECONDS,
    )
