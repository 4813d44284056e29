"""A pytest plugin (registered by ``tests/conftest.py``) that runs the test files holding a ``slow`` test first.

``make test`` hands whole files to three workers (pytest-xdist, ``--dist loadfile --no-loadscope-reorder``).
The files marked ``slow`` (a platform's start, a heartbeat timeout, a training) take most of the time, the
rest are seconds each: started first, the long files overlap one another and the short ones fill the gaps
at the end, instead of a multi-minute file starting last with the other workers idle. Items of one file stay
together and in order, so module fixtures still set up once.
"""

from __future__ import annotations

import pytest


def slow_files_first(items: list[pytest.Item]) -> list[pytest.Item]:
    """`items` with the files that hold a `slow` test before the others, each group in collection order."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow") is not None}
    return sorted(items, key=lambda item: item.path not in slow_files)  # sorted() is stable


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items[:] = slow_files_first(items)
