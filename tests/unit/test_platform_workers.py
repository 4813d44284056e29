"""Of three xdist workers, the last is given no file that needs the session platform, and every test still runs.

Bare pytest runs in a subprocess with xdist and `tests.platform_workers` on a folder of small files; a `platform`
fixture there stands for the real one. Each test records which worker ran it and whether it used the platform.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

CONFTEST = '''
import os
from pathlib import Path

import pytest

RECORD = Path(__file__).parent / "ran"


@pytest.fixture(scope="session")
def platform():
    return "platform"


@pytest.fixture
def through_platform(platform):  # a test that needs the platform through another fixture
    return platform


@pytest.fixture(autouse=True)
def record(request):
    RECORD.mkdir(exist_ok=True)
    uses = "platform" in request.fixturenames
    (RECORD / request.node.name).write_text(f"{os.environ['PYTEST_XDIST_WORKER']} {uses}")
'''
PLATFORM = "def test_{name}(platform):\n    pass\n"
THROUGH = "def test_{name}(through_platform):\n    pass\n"
PLAIN = "def test_{name}():\n    pass\n"


def test_the_last_of_three_workers_runs_no_platform_test(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    sources = {f"p{index}": PLATFORM for index in range(4)} | {"t0": THROUGH}
    sources |= {f"f{index}": PLAIN for index in range(6)}
    for name, source in sources.items():
        (tmp_path / f"test_{name}.py").write_text(source.format(name=name))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTEST_ADDOPTS": ""}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "xdist.plugin",
                             "-p", "tests.platform_workers", "-n", "3", "--dist", "loadfile", "."],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    ran = {path.name: path.read_text().split() for path in (tmp_path / "ran").iterdir()}
    assert sorted(ran) == sorted(f"test_{name}" for name in sources)  # every test ran, once
    assert {worker for worker, uses in ran.values() if uses == "True"} <= {"gw0", "gw1"}
    assert ran["test_t0"][1] == "True"
    assert any(worker == "gw2" for worker, _ in ran.values()), ran  # the third worker still ran the others' share
