"""Alembic environment: runs against the URL set by infra.database.migrate."""

from alembic import context

from infra.database.engine import build_engine
from infra.database.models import Base

config = context.config


def run_migrations_online() -> None:
    engine = build_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch migrations rebuild a table (copy, drop, rename). With foreign keys on, dropping a
            # referenced table fails or cascades into its children; SQLite's documented procedure is to
            # switch them off (outside a transaction) and check them afterwards.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=sqlite)
        with context.begin_transaction():
            context.run_migrations()
        if sqlite:
            violations = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            connection.commit()
            if violations:
                raise RuntimeError(f"migration left rows with broken foreign keys: {violations[:5]}")
    engine.dispose()


run_migrations_online()
