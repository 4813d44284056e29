"""A pytest plugin (registered by ``tests/conftest.py``) that refuses session fixtures living in test modules.

pytest registers a fixture per module that defines *or imports* it, so a session-scoped fixture imported
into two test modules is two fixtures: its server starts, or its model trains, once per module. Shared
session fixtures belong in ``tests/conftest.py`` or a plugin it lists in ``pytest_plugins``.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest


def session_fixtures_in_test_modules(items: Iterable[pytest.Item]) -> dict[str, set[str]]:
    """{fixture name: test modules that register it} for every session-scoped fixture a test module registers."""
    found: dict[str, set[str]] = {}
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        for name, definitions in (info.name2fixturedefs.items() if info is not None else ()):
            for definition in definitions:
                module = definition.baseid or ""  # a test module's node id; a conftest's folder; "" for a plugin
                if definition.scope == "session" and module.endswith(".py"):
                    found.setdefault(name, set()).add(module)
    return found


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    found = session_fixtures_in_test_modules(items)
    if found:
        listed = "; ".join(f"{name} in {', '.join(sorted(modules))}" for name, modules in sorted(found.items()))
        raise pytest.UsageError(f"session fixtures registered by test modules (one instance per module): {listed}. "
                                "Define them in tests/conftest.py or a plugin it lists, and do not import them.")
