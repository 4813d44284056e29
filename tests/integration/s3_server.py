"""A real S3 API for tests: `moto_server` from the venv, started as a subprocess on a free port."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import free_port, port_open, stop_process


@contextmanager
def moto_server(log_path: Path) -> Iterator[str]:
    """Yield the endpoint URL of a fresh moto server; it is stopped (and reaped) on exit."""
    binary = Path(sys.executable).with_name("moto_server")
    if not binary.exists():
        pytest.skip(f"moto_server not found next to {sys.executable} (install the dev extra)")
    port = free_port()
    with open(log_path, "wb") as log:
        process = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)],
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", port, timeout=0.2):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto_server did not start: {log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process, timeout=10)


def use_dummy_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """boto3 needs credentials even for moto; never let a developer's real ones be used."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": "/nonexistent",
                        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
