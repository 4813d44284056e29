"""The files that hold a `slow` test are collected first, whole and in order; the others keep their order.

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


def test_slow_files_run_first_and_stay_whole(tmp_path: Path) -> None:
    for name, source in (("test_a.py", FAST), ("test_b.py", SLOW), ("test_c.py", FAST), ("test_d.py", SLOW)):
        (tmp_path / name).write_text(source)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTEST_ADDOPTS": ""}
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                             "-p", "tests.slow_first", "."], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    collected = [line for line in result.stdout.splitlines() if "::" in line]
    assert collected == ["test_b.py::test_quick", "test_b.py::test_long", "test_d.py::test_quick",
                         "test_d.py::test_long", "test_a.py::test_one", "test_c.py::test_one"], result.stdout
