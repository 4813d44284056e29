"""Alembic environment: runs against the URL set by infra.database.migrate."""

from alembic import context

from infra.database.engine import build_engine
from infra.database.models import Base

config = context.config


def run_migrations_online() -> None:
    engine = build_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata,
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
