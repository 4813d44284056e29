"""The schemathesis CLI run over the whole contract, shared by the in-suite fuzz test and
`benchmarks/fuzz_contract.py` (the longer run against the full stack).

Also the schemathesis hook module (SCHEMATHESIS_HOOKS) for servers without Prefect: there an
operation that needs Prefect answers its documented 503 "Job orchestration unavailable", which
``no_server_error_but_prefect_down`` allows in place of the built-in ``not_a_server_error``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import schemathesis

REPO_ROOT = Path(__file__).resolve().parents[2]
ORCHESTRATION_DOWN = "Job orchestration unavailable"


@schemathesis.check
def no_server_error_but_prefect_down(ctx, response, case) -> None:
    if response.status_code >= 500 and not (response.status_code == 503 and ORCHESTRATION_DOWN in response.text):
        raise AssertionError(f"server error {response.status_code}: {response.text[:500]}")


def run_schemathesis(base_url: str, key: str, report_dir: Path, examples: int, *, seed: int | None = None,
                     prefect: bool = True, phases: str = "examples,coverage,fuzzing",
                     timeout: float = 1800) -> tuple[int, str]:
    """Fuzz every operation of ``base_url``'s OpenAPI document; returns (exit code, output).

    Checks: all of schemathesis's but ``positive_data_acceptance`` (rules the schema cannot state,
    like INSPECT_ALLOWED_PATHS, refuse some schema-valid inputs by design). ``prefect=False``: a
    documented 503 "Job orchestration unavailable" is allowed.
    """
    excluded = ["positive_data_acceptance"] + ([] if prefect else ["not_a_server_error"])
    command = [
        str(Path(sys.executable).with_name("st")), "run", f"{base_url}/api/openapi.json",
        "--header", f"X-API-Key: {key}", "--checks", "all", "--exclude-checks", ",".join(excluded),
        "--phases", phases, "--max-examples", str(examples), "--workers", "1",
        "--request-timeout", "60", "--no-color", "--generation-database", "none",
        # Our header carries the key; generated Authorization values would only be refused as wrong keys.
        "--generation-with-security-parameters", "false",
        "--report", "junit", "--report-dir", str(report_dir),
    ]
    if seed is not None:
        command += ["--seed", str(seed)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    if not prefect:
        env["SCHEMATHESIS_HOOKS"] = "tests.integration.fuzz_support"
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    return result.returncode, result.stdout + result.stderr


def summary_of(output: str) -> str:
    return output[output.rfind("SUMMARY"):] if "SUMMARY" in output else output[-3000:]


def failures_of(output: str) -> str:
    return output[output.find("FAILURES"):output.rfind("SUMMARY")] if "FAILURES" in output else output
