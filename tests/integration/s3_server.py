"""A real S3 API for tests: `moto_server` from the venv, started as a subprocess on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import require_service
from tests.machines import AWS_OVERRIDES, DUMMY_AWS, moto_binary, s3_api


@contextmanager
def moto_server(log_path: Path) -> Iterator[str]:
    """Yield the endpoint URL of a fresh moto server; it is stopped (and reaped) on exit."""
    require_service("moto_server", moto_binary() is not None,
                    "not found next to the Python interpreter (install the dev extra)")
    with s3_api(log_path) as endpoint:
        yield endpoint


def use_dummy_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """boto3 needs credentials even for moto; never let a developer's real ones be used."""
    for name, value in DUMMY_AWS.items():
        monkeypatch.setenv(name, value)
    for name in AWS_OVERRIDES:
        monkeypatch.delenv(name, raising=False)
