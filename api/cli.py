"""The `geti-inspect` command line."""

from __future__ import annotations

import os
import uuid
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from infra.settings import Settings


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"


class Workers(StrEnum):
    """Which workers `serve` runs on its own machine."""

    none = "none"
    training = "training"
    inference = "inference"
    all = "all"


class Pool(StrEnum):
    training = "training"
    inference = "inference"


app = typer.Typer(help="Geti Inspect: visual anomaly detection for factory inspection.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """Geti Inspect command line."""


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="API bind address; beyond loopback, Prefect and MLflow listen "
                                                  "there too, with credentials [env INSPECT_HOST, default 127.0.0.1]")
                    ] = None,
    port: Annotated[int | None, typer.Option(help="API port [env INSPECT_PORT, default 8000]")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data folder [env INSPECT_DATA_DIR, default ./data]")] = None,
    workers: Annotated[Workers | None, typer.Option(help="Workers this machine runs itself; 'none' when jobs run on "
                                                         "hosts that joined [env INSPECT_SERVE_WORKERS, default all]")
                       ] = None,
    log_level: Annotated[LogLevel, typer.Option(help="Console detail; debug adds HTTP requests, Alembic, access lines")
                         ] = LogLevel.info,
) -> None:
    """Start the API and everything it supervises, in the foreground (Ctrl-C stops all)."""
    overrides = {k: v for k, v in {"host": host, "port": port, "data_dir": data_dir,
                                   "serve_workers": workers.value if workers else None}.items() if v is not None}
    settings = Settings(**overrides)
    from api.serve import configure_logging, run_platform

    configure_logging(log_level.value)
    run_platform(settings, log_level.value)


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Bind address [env INSPECT_HOST, default 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [env INSPECT_PORT, default 8000]")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data folder [env INSPECT_DATA_DIR, default ./data]")] = None,
    log_level: Annotated[LogLevel, typer.Option(help="Console detail")] = LogLevel.info,
) -> None:
    """Start one API process alone against the configured database and services (a replica; starts nothing else)."""
    overrides = {k: v for k, v in {"host": host, "port": port, "data_dir": data_dir}.items() if v is not None}
    settings = Settings(**overrides)
    from api.serve import configure_logging, run_api

    configure_logging(log_level.value)
    run_api(settings, log_level.value)


@app.command()
def worker(
    pool: Annotated[list[Pool], typer.Option(help="Work pool(s) to serve (repeatable)")] = [Pool.training],  # noqa: B006
    data_dir: Annotated[Path | None, typer.Option(help="This host's data folder: logs and caches")] = None,
    server: Annotated[str | None, typer.Option(help="Join the platform whose API is here, e.g. http://10.0.0.5:8000: "
                                                    "settings and credentials come from it")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="INSPECT_API_KEY", show_envvar=True,
                                                help="The server's API key (needed with --server)")] = None,
) -> None:
    """Run Prefect worker(s) only: join a platform with --server, or use this host's INSPECT_* settings."""
    from api.serve import configure_logging, join_announcement, run_workers

    pools = [item.value for item in pool]
    configure_logging("info")
    if server is None:
        run_workers(Settings(**({"data_dir": data_dir} if data_dir is not None else {})), pools)
        return
    from api.worker_join import JoinError, join

    try:
        if not api_key:
            raise JoinError("--server needs the server's API key: --api-key or INSPECT_API_KEY")
        joined = join(server, api_key, data_dir)
    except JoinError as error:
        typer.echo(f"geti-inspect worker: {error}", err=True)
        raise typer.Exit(1) from None
    os.environ.update(joined.storage_env())  # boto3 in this process and every flow it starts
    joined.auth.install()
    run_workers(joined.settings, pools, joined.auth,
                join_announcement(server, joined.settings, pools, joined.config.server_version))


jobs = typer.Typer(help="Follow the platform's jobs (training, export, snapshots) from a terminal.",
                   no_args_is_help=True)
app.add_typer(jobs, name="jobs")


@jobs.command("watch")
def watch_job(
    job_id: Annotated[uuid.UUID, typer.Argument(help="The job id (as returned by the request that started it)")],
    api_url: Annotated[str, typer.Option(help="The REST API's base URL")] = "http://127.0.0.1:8000/api",
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between polls")] = 1.0,
) -> None:
    """Live progress of a job; exits 0 with its metrics when it completes, 1 when it fails or is
    cancelled, 2 when it cannot be followed. Sends INSPECT_API_KEY as a bearer token when set."""
    from rich.console import Console

    from api.job_watch import watch

    code = watch(job_id, api_url, os.environ.get("INSPECT_API_KEY") or None, Console(), interval)
    raise typer.Exit(code)


if __name__ == "__main__":
    app()
