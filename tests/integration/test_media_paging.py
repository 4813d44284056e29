"""Media listing at scale: pages read from either end equal a plain sort, and trigger-kept totals stay exact.

Runs on SQLite and PostgreSQL (real databases, migrated by Alembic as the app does).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, insert, select, text, update

from api.paging import newest_first_page
from infra.database.engine import session_scope
from infra.database.media_counts import media_total
from infra.database.migrate import upgrade
from infra.database.models import Media, Project


def add_project(url: str, media: int) -> uuid.UUID:
    """A project whose media share created_at values in threes, so the id must break ties."""
    project_id = uuid.uuid4()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with session_scope(url) as session:
        session.add(Project(id=project_id, name="paging"))
        session.flush()
        session.execute(insert(Media), [
            {"id": uuid.uuid4(), "project_id": project_id, "filename": f"{index}.png",
             "label": "anomalous" if index % 4 == 0 else "normal", "sha256": f"{index:064x}",
             "content_type": "image/png", "size_bytes": 1, "width": 1, "height": 1,
             "created_at": start + timedelta(seconds=index // 3), "updated_at": start}
            for index in range(media)])
    return project_id


def counted(url: str, project_id: uuid.UUID, label: str | None = None) -> int:
    with session_scope(url) as session:
        query = select(func.count()).select_from(Media).where(Media.project_id == project_id)
        if label is not None:
            query = query.where(Media.label == label)
        return session.scalar(query)


def test_pages_from_either_end_equal_a_plain_sort(database):
    project_id = add_project(database, 23)
    with session_scope(database) as session:
        for label in (None, "anomalous"):
            conditions = [Media.project_id == project_id] + ([Media.label == label] if label else [])
            expected = [row.id for row in sorted(session.scalars(select(Media).where(*conditions)),
                                                 key=lambda row: (row.created_at, row.id), reverse=True)]
            for total in (None, len(expected)):  # counted here, or given by the caller's counter
                for limit in (1, 4, 7, 30):
                    for offset in range(len(expected) + 2):
                        page = newest_first_page(session, Media, conditions, limit, offset, total=total)
                        assert page.total == len(expected)
                        assert [row.id for row in page.rows] == expected[offset:offset + limit], (label, limit, offset)


def test_totals_follow_inserts_updates_deletes_and_cascades(database):
    project_id = add_project(database, 12)
    other_id = add_project(database, 5)

    def check() -> None:
        with session_scope(database) as session:
            for project in (project_id, other_id):
                for label in (None, "normal", "anomalous"):
                    assert media_total(session, project, label) == counted(database, project, label)

    check()
    with session_scope(database) as session:
        first = session.scalars(select(Media.id).where(Media.project_id == project_id, Media.label == "normal")).first()
        session.execute(update(Media).where(Media.id == first).values(label="anomalous"))
        session.execute(update(Media).where(Media.project_id == other_id, Media.label == "normal")
                        .values(project_id=project_id))
        session.execute(delete(Media).where(Media.project_id == project_id, Media.label == "anomalous",
                                            Media.id != first))
    check()
    with session_scope(database) as session:
        assert media_total(session, project_id, "anomalous") == 1
        assert media_total(session, other_id) == counted(database, other_id) == 2
        session.delete(session.get(Project, project_id))  # media go by ON DELETE CASCADE
    with session_scope(database) as session:
        assert media_total(session, project_id) == 0
        assert session.scalar(text("SELECT count(*) FROM media_counts WHERE total <> 0 AND project_id NOT IN "
                                   "(SELECT project_id FROM media)")) == 0
    check()


def test_upgrade_restores_triggers_a_table_rebuild_dropped(database):
    project_id = add_project(database, 6)
    postgresql = database.startswith("postgresql")
    with session_scope(database) as session:
        session.execute(text("DROP TRIGGER media_counts_insert" + (" ON media" if postgresql else "")))
    add_project(database, 3)  # not counted while the trigger is gone
    with session_scope(database) as session:
        session.execute(insert(Media), [{"id": uuid.uuid4(), "project_id": project_id, "filename": "late.png",
                                         "label": "normal", "sha256": "f" * 64, "content_type": "image/png",
                                         "size_bytes": 1, "width": 1, "height": 1}])
        assert media_total(session, project_id) == 6

    upgrade(database)

    with session_scope(database) as session:
        assert media_total(session, project_id) == counted(database, project_id) == 7
    add_project(database, 2)
    with session_scope(database) as session:
        totals = dict(session.execute(select(Media.project_id, func.count()).group_by(Media.project_id)).all())
        assert {project: media_total(session, project) for project in totals} == totals
