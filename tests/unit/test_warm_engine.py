"""Spare engine processes: what they preload, and how the worker keeps exactly one waiting."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import psutil
import pytest

from infra.orchestration.warm_engine import preload
from infra.orchestration.warm_worker import SpareEngine, waiting_spares


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


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_spare_engine_keeps_one_spare_and_replaces_a_dead_one() -> None:
    spares = SpareEngine(["json"])
    await spares.refill()
    await spares.refill()
    (waiting,) = waiting_spares(os.getpid())

    waiting.kill()
    for _ in range(200):  # asyncio's child watcher reaps it; psutil must not (the worker would never learn)
        await anyio.sleep(0.05)
        if not psutil.pid_exists(waiting.pid):
            break
    await anyio.sleep(0.05)
    taken = await spares.take()  # the dead spare is not handed out: a new process is
    assert taken.pid != waiting.pid and taken.returncode is None

    await spares.refill()
    assert len(waiting_spares(os.getpid())) == 2
    await taken.aclose()  # stdin closed without an order: the spare ends on its own, cleanly
    assert taken.returncode == 0
    await spares.close()
    assert waiting_spares(os.getpid()) == []
