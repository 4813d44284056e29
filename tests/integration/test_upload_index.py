"""The duplicate lookup every upload makes (infra/splits.py) is an index seek, not a walk of the project.

EXPLAIN on a migrated database: SQLite must search ``ix_media_project_sha_label``; with only the
``(project_id, label, created_at)`` index it scanned every image of the project with that label, so
uploads into a 100,000-media project slowed to ~50 images/s (benchmarks/api_scale.py measures it).
"""

from __future__ import annotations

import uuid

from sqlalchemy import text

from infra.database.engine import get_engine
from infra.splits import NORMAL, twin_query
from tests.integration.databases import migrated_database  # noqa: F401 - the `database` fixture


def plan(url: str) -> str:
    engine = get_engine(url)
    statement = twin_query(uuid.uuid4(), NORMAL, "ab" * 32).compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            rows = connection.execute(text(f"EXPLAIN QUERY PLAN {statement}")).all()
            return "\n".join(str(row[-1]) for row in rows)
        connection.execute(text("SET enable_seqscan = off"))  # an empty table: ask which index it would use
        return "\n".join(row[0] for row in connection.execute(text(f"EXPLAIN {statement}")))


def test_the_duplicate_lookup_searches_the_sha_index(database: str) -> None:
    found = plan(database)
    print(f"\n{found}")
    assert "ix_media_project_sha_label" in found, found
    if database.startswith("sqlite"):
        assert "SEARCH media USING" in found and "SCAN" not in found, found
