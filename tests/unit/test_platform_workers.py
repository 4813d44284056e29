"""Of four xdist workers, only the first two are given files that need the session platform (or share a package's
fixtures with one), and every test still runs.

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
PACKAGE_CONFTEST = "import pytest\n\n\n@pytest.fixture(scope='package')\ndef shared():\n    return 1\n"
PLATFORM = "def test_{name}(platform):\n    pass\n"
THROUGH = "def test_{name}(through_platform):\n    pass\n"
PLAIN = "def test_{name}():\n    pass\n"


def test_only_the_first_two_of_four_workers_run_platform_tests(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    # In collection order: two platform files, then a package whose fixture is package-scoped (its first file
    # uses the platform, its second does not), then the rest. The package's second file is the first file a third
    # worker could take: it goes where its platform file goes instead.
    sources = {"a0": PLATFORM, "a1": PLATFORM} | {f"f{index}": PLAIN for index in range(8)}
    sources |= {f"p{index}": PLATFORM for index in range(2)} | {"t0": THROUGH}
    for name, source in sources.items():
        (tmp_path / f"test_{name}.py").write_text(source.format(name=name))
    package = tmp_path / "test_b"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "conftest.py").write_text(PACKAGE_CONFTEST)
    (package / "test_k0.py").write_text("def test_k0(shared, platform):\n    pass\n")
    (package / "test_k1.py").write_text("def test_k1(shared):\n    pass\n")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTEST_ADDOPTS": ""}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "xdist.plugin",
                             "-p", "tests.platform_workers", "-n", "4", "--dist", "loadfile", "."],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    ran = {path.name: path.read_text().split() for path in (tmp_path / "ran").iterdir()}
    assert sorted(ran) == sorted([*(f"test_{name}" for name in sources), "test_k0", "test_k1"])  # each, once
    assert {worker for worker, uses in ran.values() if uses == "True"} <= {"gw0", "gw1"}, ran
    assert ran["test_t0"][1] == "True"
    assert ran["test_k1"][0] in {"gw0", "gw1"}, ran
    assert {worker for worker, _ in ran.values()} >= {"gw2", "gw3"}, ran  # the others still ran their share
