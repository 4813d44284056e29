"""Alembic migrations, applied programmatically at start (no alembic.ini needed).

Replicas of the API that start together on one PostgreSQL upgrade one after another under an
advisory lock (`leadership.migration_lock`): the first applies the migrations, the others find the
schema at head. Each logs whether it changed the schema.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from infra.database import media_counts
from infra.database.engine import build_engine
from infra.database.leadership import migration_lock

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # '%' must be escaped for configparser (URL-encoded passwords).
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def current_revision(url: str) -> str | None:
    engine = build_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    with migration_lock(url):
        before = current_revision(url)
        command.upgrade(alembic_config(url), revision)
        if revision == "head":
            engine = build_engine(url)
            try:
                media_counts.ensure(engine)
            finally:
                engine.dispose()
        after = current_revision(url)
    if after != before:
        log.info("database schema migrated: %s -> %s", before or "empty", after)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)
