"""The Alembic migrations build exactly the schema the models describe, and undo it cleanly."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, insert, inspect, select
from sqlalchemy.exc import IntegrityError

from infra.database.engine import build_engine, session_scope
from infra.database.migrate import alembic_config, current_revision, downgrade, upgrade
from infra.database.models import ActivePipeline, Base
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


def _pipeline_with_runs(url: str, statuses: list[str]) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """A pipeline (with its project, model, source, sink) and active rows of `statuses`, oldest first.

    Written through the tables as they are at the database's revision (reflected), not through the
    ORM models, which describe the head schema.
    """
    engine = build_engine(url)
    tables = MetaData()
    tables.reflect(engine)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    # Reflected SQLite columns are CHAR(32): pass what the Uuid type would have stored.
    as_stored = (lambda value: value.hex) if url.startswith("sqlite") else (lambda value: value)
    ids = {name: as_stored(uuid.uuid4()) for name in ("project", "model", "source", "sink", "pipeline")}
    stamps = {"created_at": start, "updated_at": start}
    try:
        with engine.begin() as connection:
            connection.execute(insert(tables.tables["projects"]), {"id": ids["project"], "name": "line", **stamps})
            connection.execute(insert(tables.tables["models"]), {
                "id": ids["model"], "project_id": ids["project"], "name": "m", "architecture": "padim",
                "format": "openvino", "status": "ready", "parameters": {}, "metrics": {}, **stamps})
            for kind, type_name in (("source", "video_file"), ("sink", "filesystem")):
                connection.execute(insert(tables.tables[f"{kind}s"]), {
                    "id": ids[kind], "project_id": ids["project"], "type": type_name, "name": kind, "config": {},
                    **stamps})
            connection.execute(insert(tables.tables["pipelines"]), {
                "id": ids["pipeline"], "project_id": ids["project"], "name": "p", "model_id": ids["model"],
                "source_id": ids["source"], "sink_id": ids["sink"], "config": {}, **stamps})
            run_ids = [as_stored(uuid.uuid4()) for _ in statuses]
            connection.execute(insert(tables.tables["active_pipelines"]), [
                {"id": run_id, "pipeline_id": ids["pipeline"], "status": status, "metrics": {},
                 "created_at": start + timedelta(seconds=index)}
                for index, (run_id, status) in enumerate(zip(run_ids, statuses, strict=True))])
    finally:
        engine.dispose()
    return uuid.UUID(str(ids["pipeline"])), [uuid.UUID(str(run_id)) for run_id in run_ids]


def test_one_live_run_per_pipeline(empty_database):
    # Rows the double-start race left before the index existed: the newest live one stays.
    upgrade(empty_database, "0001_initial")
    pipeline_id, (older, newer, stopped) = _pipeline_with_runs(empty_database, ["running", "starting", "stopped"])

    upgrade(empty_database)

    with session_scope(empty_database) as session:
        statuses = {row.id: (row.status, row.message) for row in session.scalars(select(ActivePipeline))}
    assert statuses[older] == ("failed", "superseded by a later start of the same pipeline")
    assert statuses[newer] == ("starting", None) and statuses[stopped] == ("stopped", None)
    with pytest.raises(IntegrityError), session_scope(empty_database) as session:
        session.add(ActivePipeline(pipeline_id=pipeline_id, status="running"))
    with session_scope(empty_database) as session:  # finished runs do not count
        session.add_all([ActivePipeline(pipeline_id=pipeline_id, status=status) for status in ("stopped", "failed")])
