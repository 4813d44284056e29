"""One process per database does a job: PostgreSQL advisory locks, on a connection of their own.

Several API processes (replicas) may share one PostgreSQL database. A `Leadership` is held by at
most one of them: `pg_try_advisory_lock` on a dedicated connection, which holds the lock for as
long as it lives. A killed leader's connection closes and PostgreSQL releases the lock at once;
the others ask again on each `held()` call, so one of them takes over by its next pass. A leader
whose connection breaks (database restart, network) learns it at its next `held()` and stops.
SQLite is one process's file, so there its only process always leads. `migration_lock` serialises
schema upgrades of replicas started together the same way (a blocking lock).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

# TCP keepalives on the lock connection: a leader cut off from the database notices within ~15 s.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3,
              "connect_timeout": 5}


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for `name` (advisory locks are per database)."""
    return int.from_bytes(hashlib.sha256(f"geti-inspect:{name}".encode()).digest()[:8], "big", signed=True)


def is_postgresql(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def _lock_engine(url: str) -> Engine:
    """Connections that are never pooled, so closing one really ends its session (and its locks)."""
    args = KEEPALIVES if make_url(url).get_driver_name() in ("psycopg", "psycopg2") else {}
    return create_engine(url, poolclass=NullPool, connect_args=args)


class Leadership:
    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self.name = name
        self.key = lock_key(name)
        self._shared = not is_postgresql(url)  # SQLite: one process
        self._engine: Engine | None = None
        self._connection: Connection | None = None

    @property
    def is_leader(self) -> bool:
        """As of the last `held()` call (no database round trip)."""
        return self._shared or self._connection is not None

    def held(self) -> bool:
        """Keep (checking the connection still lives) or try to take the lock; never blocks on another holder."""
        if self._shared:
            return True
        if self._connection is not None:
            try:
                self._connection.execute(text("SELECT 1")).scalar()
                self._connection.commit()
                return True
            except Exception as error:  # noqa: BLE001 - any failure means the lock may be gone
                log.warning("%s: lost the database connection that held the lead (%s)", self.name, error)
                self._drop()
        try:
            if self._engine is None:
                self._engine = _lock_engine(self.url)
            connection = self._engine.connect()
            taken = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}).scalar()
            connection.commit()  # the session-level lock outlives the transaction
        except Exception as error:  # noqa: BLE001
            log.warning("%s: cannot reach the database to take the lead: %s", self.name, error)
            return False
        if not taken:
            connection.close()
            return False
        self._connection = connection
        log.info("%s: this process leads", self.name)
        return True

    def release(self) -> None:
        """Give the lead up (closing the connection releases the lock) and free the engine."""
        self._drop()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def _drop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):  # already broken: nothing left to release
                self._connection.close()
            self._connection = None


@contextmanager
def migration_lock(url: str) -> Iterator[None]:
    """Hold PostgreSQL's migration lock for the block: replicas that start together upgrade one after another,
    and each one after the first finds the schema at head. No-op elsewhere."""
    if not is_postgresql(url):
        yield
        return
    engine = _lock_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": lock_key("migrations")})
            connection.commit()
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": lock_key("migrations")})
                connection.commit()
    finally:
        engine.dispose()
