"""`serve --log-level`: third-party chatter only when debugging (the console test runs a real serve)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from api.serve import CHATTY_LOGGERS, configure_logging, ready_banner
from infra.settings import Settings


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    levels = {name: logging.getLogger(name).level for name in (*CHATTY_LOGGERS, "", "prefect.client")}
    handlers = list(logging.getLogger().handlers)
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    logging.getLogger().handlers[:] = handlers


def shown(name: str, level: int) -> bool:
    """Whether a record would reach the console: its logger lets it through and the handlers keep it."""
    record = logging.LogRecord(name, level, __file__, 1, "message", None, None)
    handlers = logging.getLogger().handlers
    return logging.getLogger(name).isEnabledFor(level) and all(handler.filter(record) for handler in handlers)


def test_info_keeps_the_platform_and_silences_the_chatter() -> None:
    logging.getLogger("prefect.client").setLevel(logging.INFO)  # as Prefect's own logging config does
    configure_logging("info")
    assert shown("infra.supervisor.stack", logging.INFO) and shown("api.serve", logging.INFO)
    for name in ("httpx", "alembic.runtime.plugins", "uvicorn.access", "prefect.client", "mlflow.tracking"):
        assert not shown(name, logging.INFO), name
        assert shown(name, logging.WARNING), name


def test_debug_shows_everything() -> None:
    configure_logging("debug")
    for name in ("httpx", "alembic.runtime.plugins", "uvicorn.access", "api.serve"):
        assert shown(name, logging.DEBUG), name


def test_the_banner_names_every_address(tmp_path) -> None:
    settings = Settings(port=8123, prefect_port=4300, mlflow_port=5100, data_dir=tmp_path)
    assert ready_banner(settings, local_workers=("training", "inference")).splitlines() == [
        "Geti Inspect is ready",
        "  Console:    http://127.0.0.1:8123/ui/",
        "  API:        http://127.0.0.1:8123/api",
        "  API docs:   http://127.0.0.1:8123/api/docs",
        "  Prefect UI: http://127.0.0.1:4300",
        "  MLflow UI:  http://127.0.0.1:5100",
        f"  Data dir:   {tmp_path.resolve()}",
        f"  Log dir:    {tmp_path.resolve() / 'logs'}",
        "  Workers:    training, inference on this machine",
        "Press Ctrl-C to stop.",
    ]


def test_an_exposed_platform_says_how_to_sign_in_and_join(tmp_path) -> None:
    from infra.credentials import ServiceCredentials

    settings = Settings(host="10.0.0.5", port=8123, data_dir=tmp_path)
    credentials = ServiceCredentials.generate()
    banner = ready_banner(settings, credentials, local_workers=())
    kept = tmp_path.resolve() / "service-credentials.json"
    for line in ("  Prefect UI: http://10.0.0.5:4200",
                 f'              sign in: "inspect:" + prefect_password from {kept}',
                 f'              sign in: user "inspect", mlflow_password from {kept}',
                 "  Workers:    none on this machine: jobs run on hosts that joined",
                 "  Join:       geti-inspect worker --server http://10.0.0.5:8123 --api-key <key> "
                 "--pool training|inference --data-dir <dir>"):
        assert line in banner.splitlines(), banner
    assert credentials.prefect_password not in banner and credentials.mlflow_password not in banner


def test_the_banner_keeps_configured_ui_addresses() -> None:
    public = Settings(prefect_ui_url="https://prefect.plant.example/", mlflow_ui_url="https://mlflow.plant.example")
    assert "  Prefect UI: https://prefect.plant.example" in ready_banner(public).splitlines()
