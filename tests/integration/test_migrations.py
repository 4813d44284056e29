"""The Alembic migrations build exactly the schema the models describe, and undo it cleanly."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from infra.database.engine import build_engine
from infra.database.migrate import alembic_config, downgrade, upgrade
from infra.database.models import Base
from tests.integration.databases import fresh_postgres_database, sqlite_url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_database(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
    else:
        with fresh_postgres_database() as url:
            yield url


def table_names(url: str) -> set[str]:
    engine = build_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def schema_differences(url: str) -> list:
    engine = build_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    engine = build_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(empty_database):
    head = ScriptDirectory.from_config(alembic_config(empty_database)).get_current_head()
    model_tables = set(Base.metadata.tables)

    upgrade(empty_database)
    assert table_names(empty_database) == model_tables | {"alembic_version"}
    assert current_revision(empty_database) == head

    downgrade(empty_database)
    assert table_names(empty_database) == {"alembic_version"}
    assert current_revision(empty_database) is None

    upgrade(empty_database)
    assert table_names(empty_database) == model_tables | {"alembic_version"}
    upgrade(empty_database)  # already at head: a no-op, not an error
    assert current_revision(empty_database) == head


def test_models_and_migrations_are_in_sync(empty_database):
    upgrade(empty_database)
    assert schema_differences(empty_database) == []
