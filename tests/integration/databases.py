"""Fresh, isolated databases for tests: a temporary SQLite file, or a throwaway PostgreSQL database.

A plugin registered once by ``tests/conftest.py``. The ``database`` fixture starts each test on a copy of
a database migrated once per session (a file copy on SQLite, ``CREATE DATABASE ... TEMPLATE`` on
PostgreSQL) instead of running every migration per test.
"""

from __future__ import annotations

import os
import shutil
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
from tests.conftest import postgres_url, require_service


def _server_url() -> tuple[str, str]:
    """A PostgreSQL URL that connects (SQLAlchemy form, libpq form), or skip with the reason."""
    configured = postgres_url()
    require_service("PostgreSQL", configured is not None,
                    "set INSPECT_TEST_POSTGRES_URL or run one on 127.0.0.1:5432")
    assert configured is not None
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
    require_service("PostgreSQL", False, message)
    raise AssertionError("unreachable")  # require_service skipped or failed


@contextmanager
def fresh_postgres_database(template: str | None = None) -> Iterator[str]:
    """Create a uniquely named database (a copy of the database `template` when given), yield its SQLAlchemy
    URL, drop it afterwards."""
    server_url, admin_libpq = _server_url()
    name = f"inspect_test_{uuid.uuid4().hex[:12]}"
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        create = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
    with psycopg.connect(admin_libpq, autocommit=True) as admin:
        admin.execute(create)
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        get_engine(url).dispose()  # the app's pooled connections would block the drop
        with psycopg.connect(admin_libpq, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'test.db'}"


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """The name of a PostgreSQL database at the newest schema, migrated once per session (skips without PostgreSQL)."""
    with fresh_postgres_database() as url:
        upgrade(url)
        get_engine(url).dispose()  # a template must have no open connection while it is copied
        yield make_url(url).database


@pytest.fixture(name="database", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def migrated_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database at the newest schema, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        shutil.copyfile(request.getfixturevalue("sqlite_template"), tmp_path / "test.db")
        yield sqlite_url(tmp_path)
    else:
        with fresh_postgres_database(template=request.getfixturevalue("postgres_template")) as url:
            yield url
