"""Per-project media counts (`media_counts`), kept exact by triggers on `media`.

A listing's `total` is then a key lookup instead of a count over 100,000 rows. Triggers rather than
application code, so every writer (uploads, collected frames, deletes, cascades from a deleted
project) keeps the counts right. SQLite uses row triggers; PostgreSQL statement triggers over the
transition tables, so a bulk insert or delete updates each counter once per statement.

SQLite drops a table's triggers when a batch migration recreates the table, so `ensure` (run after
every upgrade) puts back missing triggers and recounts.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import Connection, Engine, func, inspect, select, text
from sqlalchemy.orm import Session

from infra.database.models import MediaCount

log = logging.getLogger(__name__)

_SQLITE_ADD = ("INSERT INTO media_counts (project_id, label, total) VALUES (NEW.project_id, NEW.label, 1) "
               "ON CONFLICT (project_id, label) DO UPDATE SET total = total + 1;")
_SQLITE_REMOVE = "UPDATE media_counts SET total = total - 1 WHERE project_id = OLD.project_id AND label = OLD.label;"
_SQLITE_TRIGGERS = {
    "media_counts_insert": f"AFTER INSERT ON media BEGIN {_SQLITE_ADD} END",
    "media_counts_delete": f"AFTER DELETE ON media BEGIN {_SQLITE_REMOVE} END",
    "media_counts_update": ("AFTER UPDATE OF project_id, label ON media "
                            "WHEN OLD.project_id IS NOT NEW.project_id OR OLD.label IS NOT NEW.label "
                            f"BEGIN {_SQLITE_REMOVE} {_SQLITE_ADD} END"),
}

_PG_ADD = ("INSERT INTO media_counts (project_id, label, total) "
           "SELECT project_id, label, count(*) FROM new_rows GROUP BY project_id, label "
           "ON CONFLICT (project_id, label) DO UPDATE SET total = media_counts.total + EXCLUDED.total;")
_PG_REMOVE = ("UPDATE media_counts SET total = media_counts.total - gone.n "
              "FROM (SELECT project_id, label, count(*) AS n FROM old_rows GROUP BY project_id, label) AS gone "
              "WHERE media_counts.project_id = gone.project_id AND media_counts.label = gone.label;")
# name: (event, transition tables, function body)
_PG_TRIGGERS = {
    "media_counts_insert": ("INSERT", "NEW TABLE AS new_rows", _PG_ADD),
    "media_counts_delete": ("DELETE", "OLD TABLE AS old_rows", _PG_REMOVE),
    "media_counts_update": ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows", f"{_PG_REMOVE} {_PG_ADD}"),
}
TRIGGERS = tuple(_SQLITE_TRIGGERS)


def media_total(session: Session, project_id: uuid.UUID, label: str | None = None) -> int:
    """Media of a project (with that label, when given): the sum of at most a few counter rows."""
    query = select(func.coalesce(func.sum(MediaCount.total), 0)).where(MediaCount.project_id == project_id)
    if label is not None:
        query = query.where(MediaCount.label == label)
    return int(session.scalar(query) or 0)


def _postgresql(connection: Connection) -> bool:
    return connection.dialect.name == "postgresql"


def create_triggers(connection: Connection) -> None:
    if _postgresql(connection):
        for name, (event, tables, body) in _PG_TRIGGERS.items():
            connection.execute(text(f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ "
                                    f"BEGIN {body} RETURN NULL; END $$"))
            connection.execute(text(f"CREATE TRIGGER {name} AFTER {event} ON media REFERENCING {tables} "
                                    f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()"))
    else:
        for name, definition in _SQLITE_TRIGGERS.items():
            connection.execute(text(f"CREATE TRIGGER {name} {definition}"))


def drop_triggers(connection: Connection) -> None:
    postgresql = _postgresql(connection)
    for name in TRIGGERS:
        connection.execute(text(f"DROP TRIGGER IF EXISTS {name}" + (" ON media" if postgresql else "")))
        if postgresql:
            connection.execute(text(f"DROP FUNCTION IF EXISTS {name}()"))


def recount(connection: Connection) -> None:
    connection.execute(text("DELETE FROM media_counts"))
    connection.execute(text("INSERT INTO media_counts (project_id, label, total) "
                            "SELECT project_id, label, count(*) FROM media GROUP BY project_id, label"))


def _present(connection: Connection) -> set[str]:
    if _postgresql(connection):
        query = "SELECT tgname FROM pg_trigger WHERE tgrelid = 'media'::regclass AND NOT tgisinternal"
    else:
        query = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'media'"
    return set(connection.scalars(text(query)))


def ensure(engine: Engine) -> None:
    """Put back triggers a later table rebuild dropped, and recount (a no-op when all are there)."""
    if "media_counts" not in inspect(engine).get_table_names():
        return
    with engine.begin() as connection:
        if set(TRIGGERS) <= _present(connection):
            return
        log.warning("media count triggers were missing (a migration rebuilt the media table): recreating")
        drop_triggers(connection)
        create_triggers(connection)
        recount(connection)
