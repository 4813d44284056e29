"""Fresh, isolated databases for tests: a temporary SQLite file, or a throwaway PostgreSQL database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from infra.database.engine import get_engine
from infra.database.migrate import upgrade
from tests.conftest import postgres_url


def _server_url() -> tuple[str, str]:
    """A PostgreSQL URL that connects (SQLAlchemy form, libpq form), or skip with the reason."""
    configured = postgres_url()
    if configured is None:
        pytest.skip("no PostgreSQL: set INSPECT_TEST_POSTGRES_URL or run one on 127.0.0.1:5432")
    url = make_url(configured)
    # A loopback server with trust auth may know only one of these roles.
    candidates = [url] if url.username not in (None, "postgres") else [url, url.set(username="root")]
    failures = []
    for candidate in candidates:
        libpq = candidate.set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            with psycopg.connect(libpq, connect_timeout=5):
                return candidate.render_as_string(hide_password=False), libpq
        except psycopg.Error as error:
            failures.append(f"{candidate.username}: {error}".strip())
    message = f"PostgreSQL at {url.host}:{url.port} refused every user: {'; '.join(failures)}"
    if os.environ.get("INSPECT_TEST_POSTGRES_URL"):
        pytest.fail(message)  # explicitly configured: a broken URL must not pass silently
    pytest.skip(message)


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """Create a uniquely named database, yield its SQLAlchemy URL, drop it afterwards."""
    server_url, admin_libpq = _server_url()
    name = f"inspect_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_libpq, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        get_engine(url).dispose()  # the app's pooled connections would block the drop
        with psycopg.connect(admin_libpq, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'test.db'}"


@pytest.fixture(name="database", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def migrated_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database at the newest schema, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        url = sqlite_url(tmp_path)
        upgrade(url)
        yield url
    else:
        with fresh_postgres_database() as url:
            upgrade(url)
            yield url
