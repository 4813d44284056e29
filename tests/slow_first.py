"""A pytest plugin (registered by ``tests/conftest.py``) that runs the test files holding a ``slow`` test first.

``make test`` hands whole files to four workers (pytest-xdist, ``--dist loadfile --no-loadscope-reorder``).
The files marked ``slow`` (a platform's start, a heartbeat timeout, a training) take most of the time, the
rest are seconds each: started first, the long files overlap one another and the short ones fill the gaps
at the end, instead of a multi-minute file starting last with the other workers idle. Items of one file stay
together and in order, so module fixtures still set up once.

The files of a package whose fixtures are package-scoped (``tests/console``: a Chromium, an API process on the
platform) move as one block, where its first file goes: pytest tears such fixtures down whenever a worker
leaves the package, so a package split between the slow files and the rest started them twice per worker.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def package_of(item: pytest.Item) -> str | None:
    """The package (node id) whose package-scoped fixtures `item` uses, if any."""
    info = getattr(item, "_fixtureinfo", None)  # pytest's own record of the item's fixtures (not public API)
    for definitions in getattr(info, "name2fixturedefs", {}).values():
        for definition in definitions:
            if definition.scope == "package":
                return definition.baseid
    return None


def slow_files_first(items: list[pytest.Item]) -> list[pytest.Item]:
    """`items` with the files that hold a `slow` test before the others, each group in collection order; the files
    of a package with package-scoped fixtures stay together (slow if one of them is)."""
    block: dict[Path, str] = {}
    for item in items:
        package = package_of(item)
        if package is not None or item.path not in block:
            block[item.path] = package if package is not None else str(item.path)
    slow_blocks = {block[item.path] for item in items if item.get_closest_marker("slow") is not None}
    first_seen: dict[str, int] = {}
    for index, item in enumerate(items):
        first_seen.setdefault(block[item.path], index)
    return sorted(items, key=lambda item: (block[item.path] not in slow_blocks, first_seen[block[item.path]]))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items[:] = slow_files_first(items)
