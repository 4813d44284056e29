"""The files that hold a `slow` test are collected first, whole and in order; the others keep their order; the files
of a package with a package-scoped fixture stay together.

Bare pytest runs in a subprocess with only `tests.slow_first` as a plugin and lists what it collected.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

FAST = "def test_one():\n    pass\n"
SLOW = "import pytest\n\n\ndef test_quick():\n    pass\n\n\n@pytest.mark.slow\ndef test_long():\n    pass\n"


def _collected(folder: Path) -> list[str]:
    """The test ids a bare pytest with the plugin collects in `folder`, in order."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTEST_ADDOPTS": ""}
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                             "-p", "tests.slow_first", "."], cwd=folder, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return [line for line in result.stdout.splitlines() if "::" in line]


def test_slow_files_run_first_and_stay_whole(tmp_path: Path) -> None:
    for name, source in (("test_a.py", FAST), ("test_b.py", SLOW), ("test_c.py", FAST), ("test_d.py", SLOW)):
        (tmp_path / name).write_text(source)
    collected = _collected(tmp_path)
    assert collected == ["test_b.py::test_quick", "test_b.py::test_long", "test_d.py::test_quick",
                         "test_d.py::test_long", "test_a.py::test_one", "test_c.py::test_one"], collected


def test_a_package_with_package_scoped_fixtures_moves_as_one_block(tmp_path: Path) -> None:
    """Its fast file comes along with its slow one, so a worker sets the package's fixtures up once."""
    package = tmp_path / "zpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "conftest.py").write_text("import pytest\n\n\n@pytest.fixture(scope='package')\n"
                                         "def shared():\n    return 1\n")
    (package / "test_p1.py").write_text("def test_uses(shared):\n    pass\n")
    (package / "test_p2.py").write_text("import pytest\n\n\n@pytest.mark.slow\ndef test_long(shared):\n    pass\n")
    for name, source in (("test_a.py", FAST), ("test_b.py", SLOW)):
        (tmp_path / name).write_text(source)
    collected = _collected(tmp_path)
    assert collected == ["test_b.py::test_quick", "test_b.py::test_long", "zpkg/test_p1.py::test_uses",
                         "zpkg/test_p2.py::test_long", "test_a.py::test_one"], collected
