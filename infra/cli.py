"""The `geti-inspect` command line."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from infra.settings import Settings

app = typer.Typer(help="Geti Inspect: visual anomaly detection for factory inspection.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """Geti Inspect command line."""


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="API bind address [env INSPECT_HOST, default 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="API port [env INSPECT_PORT, default 8000]")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data folder [env INSPECT_DATA_DIR, default ./data]")] = None,
) -> None:
    """Start the API and everything it supervises, in the foreground (Ctrl-C stops all)."""
    overrides = {k: v for k, v in {"host": host, "port": port, "data_dir": data_dir}.items() if v is not None}
    settings = Settings(**overrides)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from infra.serve import run_platform

    run_platform(settings)


@app.command()
def worker(
    pool: Annotated[list[str], typer.Option(help="Work pool(s) to serve (repeatable)")] = ["training"],  # noqa: B006
    data_dir: Annotated[Path | None, typer.Option(help="Local data folder for logs and caches")] = None,
) -> None:
    """Run Prefect worker(s) only, against INSPECT_PREFECT_API_URL (adds a machine to the platform)."""
    settings = Settings(**({"data_dir": data_dir} if data_dir is not None else {}))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from infra.serve import run_workers

    run_workers(settings, pool)


if __name__ == "__main__":
    app()
