"""The lookups every upload makes (infra/splits.py) are index seeks, not walks of the project.

EXPLAIN on a migrated database: SQLite must search ``ix_media_project_sha_label``; with only the
``(project_id, label, created_at)`` index it scanned every image of the project with that label, so
uploads into a 100,000-media project slowed to ~50 images/s (benchmarks/api_scale.py measures it).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import insert, text

from infra.database.engine import get_engine
from infra.database.models import Media, Project
from infra.splits import EVAL, NORMAL, capped_count_query, twin_query
from tests.integration.databases import migrated_database  # noqa: F401 - the `database` fixture


def populated(url: str) -> uuid.UUID:
    """A project with 3,000 media as uploads leave them (90 % normal, a fifth of those in eval), analysed,
    so the planner chooses as it would on a real database."""
    project_id = uuid.uuid4()
    now = datetime.now(UTC)
    rows = [{"id": uuid.uuid4(), "project_id": project_id, "filename": "f.png", "sha256": f"{index:064x}",
             "label": "anomalous" if index % 10 == 0 else "normal", "split": "eval" if index % 5 == 0 else "train",
             "content_type": "image/png", "size_bytes": 1, "width": 1, "height": 1, "created_at": now,
             "updated_at": now} for index in range(3000)]
    engine = get_engine(url)
    with engine.begin() as connection:
        connection.execute(insert(Project), [{"id": project_id, "name": "p", "created_at": now, "updated_at": now}])
        connection.execute(insert(Media), rows)
        connection.execute(text("ANALYZE"))
    return project_id


def plan(url: str, query) -> str:  # noqa: ANN001 - a select
    engine = get_engine(url)
    statement = query.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            rows = connection.execute(text(f"EXPLAIN QUERY PLAN {statement}")).all()
            return "\n".join(str(row[-1]) for row in rows)
        return "\n".join(row[0] for row in connection.execute(text(f"EXPLAIN {statement}")))


def test_the_duplicate_lookup_searches_the_sha_index(database: str) -> None:
    found = plan(database, twin_query(populated(database), NORMAL, "ab" * 32))
    print(f"\n{found}")
    assert "ix_media_project_sha_label" in found, found
    if database.startswith("sqlite"):
        assert "SEARCH media USING" in found and "SCAN" not in found, found


def test_the_split_counts_search_the_label_split_index(database: str) -> None:
    """The split rule counts a project's eval normals up to 4 every upload: with the label index alone, a
    project short of them had every normal row read to test its split. (PostgreSQL weighs the LIMIT: with
    hundreds of matches a sequential scan stops after a few rows, so only its plan is shown.)"""
    found = plan(database, capped_count_query(populated(database), EVAL, 4))
    print(f"\n{found}")
    if database.startswith("sqlite"):
        assert "ix_media_project_label_split" in found, found
