"""The platform's SQLite engine: a writer waits its turn behind a long write instead of failing."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import text

from infra.database.engine import build_engine

HELD_S = 11.0  # longer than the 10 s a writer used to wait before its request failed with "database is locked"


def test_a_writer_waits_out_a_write_lock_held_for_11_s(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wait.db'}"
    holder, waiter = build_engine(url), build_engine(url)
    with holder.begin() as connection:
        connection.execute(text("CREATE TABLE item (name TEXT)"))
    locked, release = threading.Event(), threading.Event()

    def hold_the_write_lock() -> None:
        with holder.begin() as connection:
            connection.execute(text("INSERT INTO item VALUES ('first')"))  # takes the write lock
            locked.set()
            release.wait(HELD_S)

    thread = threading.Thread(target=hold_the_write_lock)
    thread.start()
    try:
        assert locked.wait(30)
        with waiter.begin() as connection:  # blocks until the holder commits
            connection.execute(text("INSERT INTO item VALUES ('second')"))
    finally:
        release.set()
        thread.join()
    with waiter.connect() as connection:
        assert connection.execute(text("SELECT name FROM item ORDER BY rowid")).scalars().all() == ["first", "second"]
    holder.dispose()
    waiter.dispose()
