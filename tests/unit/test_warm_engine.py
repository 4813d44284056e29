"""The spare engine's preload: entrypoint modules, the heavy imports they name, failures left to the run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from infra.orchestration.warm_engine import preload


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    root = tmp_path / "warmpkg"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "flow.py").write_text('WARM_START_IMPORTS = ("warmpkg.heavy", "warmpkg.broken")\n')
    (root / "heavy.py").write_text("LOADED = True\n")
    (root / "broken.py").write_text("raise ImportError('no such backend here')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "warmpkg"
    for name in [name for name in sys.modules if name.startswith("warmpkg")]:
        del sys.modules[name]


def test_preload_follows_warm_start_imports_and_survives_a_broken_module(package, caplog) -> None:
    preload([f"{package}.flow", f"{package}.missing"])

    assert f"{package}.heavy" in sys.modules
    assert f"{package}.broken" not in sys.modules
    failed = {record.getMessage() for record in caplog.records}
    assert failed == {f"warm engine could not preload {package}.{name}" for name in ("broken", "missing")}
