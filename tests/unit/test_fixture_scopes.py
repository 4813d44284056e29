"""Session fixtures run once per session: the suite refuses one that a test module defines or imports.

Bare pytest runs in a subprocess (no plugins but ours): two modules that import one session fixture
are refused at collection, naming it and both modules; the same fixture in a conftest is accepted.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

SHARED = """
import pytest

STARTS = []


@pytest.fixture(scope="session")
def server():
    STARTS.append(1)
    return len(STARTS)
"""
USER = """
{import_line}


def test_{name}(server):
    assert server == 1  # started once
"""


def _pytest(folder: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(folder)]),
           "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.fixture_scopes",
                           "."], cwd=folder, env=env, capture_output=True, text=True, timeout=120)


def test_a_session_fixture_imported_into_two_modules_is_refused(tmp_path: Path) -> None:
    (tmp_path / "shared_servers.py").write_text(SHARED)
    for name in ("first", "second"):
        (tmp_path / f"test_{name}.py").write_text(USER.format(import_line="from shared_servers import server",
                                                              name=name))
    result = _pytest(tmp_path)
    assert result.returncode != 0, result.stdout
    output = result.stdout + result.stderr
    assert "session fixtures registered by test modules" in output, output
    assert "server in test_first.py, test_second.py" in output, output


def test_the_same_fixture_in_a_conftest_runs_once(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(SHARED)
    for name in ("first", "second"):
        (tmp_path / f"test_{name}.py").write_text(USER.format(import_line="", name=name))
    result = _pytest(tmp_path)
    assert result.returncode == 0 and "2 passed" in result.stdout, result.stdout + result.stderr
