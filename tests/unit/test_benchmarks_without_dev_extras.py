"""Benchmarks run from a runtime-only install: no pytest, no schemathesis (the dev extras).

The contract fuzz (`benchmarks/fuzz_contract.py`) is the exception: schemathesis is what it runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
NEEDS_DEV_EXTRAS = {"fuzz_contract"}

PROBE = """
import importlib, sys
sys.modules["pytest"] = None  # an import of either now fails, as in an install without the dev extras
sys.modules["schemathesis"] = None
for name in sys.argv[1:]:
    importlib.import_module(name)
"""


def test_every_benchmark_and_the_helpers_it_imports_late_load_without_pytest() -> None:
    benchmarks = sorted(f"benchmarks.{path.stem}" for path in (REPO_ROOT / "benchmarks").glob("*.py")
                        if path.stem not in NEEDS_DEV_EXTRAS)
    # Imported inside the benchmarks' functions, so importing the scripts alone would not reach them.
    helpers = ["tests.integration.pipeline_helpers", "tests.integration.pipeline_support", "tests.synthetic_parts",
               "tests.machines", "tests.network"]
    result = subprocess.run([sys.executable, "-c", PROBE, *benchmarks, *helpers], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "benchmarks.api_scale" in benchmarks and "benchmarks.training" in benchmarks
