"""The CI switch: with INSPECT_TEST_REQUIRE_SERVICES=1 a test whose service is missing fails; without it, it skips.

A bare pytest in a subprocess (no plugins, no project conftest) runs one probe test that marks its
service missing through the project's `require_service`; `.ci/run` must set the switch for `make test`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT
from tests.services import REQUIRE_SERVICES_ENV

PROBE = """
from tests.services import require_service


def test_needs_the_probe_service():
    require_service("the probe service", False, "marked missing by the test")


def test_has_its_service():
    require_service("loopback", True)
"""


def _run_probe(tmp_path: Path, require: str | None) -> subprocess.CompletedProcess:
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = {key: value for key, value in os.environ.items() if key != REQUIRE_SERVICES_ENV}
    env |= {"PYTHONPATH": str(REPO_ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    if require is not None:
        env[REQUIRE_SERVICES_ENV] = require
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rsf", "-p", "no:cacheprovider", "test_probe.py"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_a_missing_service_fails_when_services_are_required(tmp_path: Path) -> None:
    result = _run_probe(tmp_path, "1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 1 passed" in result.stdout, result.stdout
    assert "the probe service is not available: marked missing by the test" in result.stdout


def test_a_missing_service_skips_on_a_laptop(tmp_path: Path) -> None:
    result = _run_probe(tmp_path, None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 1 skipped" in result.stdout, result.stdout
    assert "the probe service is not available" in result.stdout


def test_ci_runs_make_test_with_services_required() -> None:
    script = (REPO_ROOT / ".ci" / "run").read_text().splitlines()
    commands = [line for line in script if line.strip() and not line.startswith("#")]
    # The switch comes first; then the suite, then the accuracy test on real data it leaves out (marker real_data).
    assert commands.index(f"export {REQUIRE_SERVICES_ENV}=1") < commands.index("make test")
    assert commands[-2:] == ["make test", "exec make test-real-data"]
