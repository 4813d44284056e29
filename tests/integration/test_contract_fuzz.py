"""The whole OpenAPI contract fuzzed with schemathesis against a server process (uvicorn, API key set).

Every operation of /api/openapi.json through the schemathesis CLI: its examples, coverage
(boundary and invalid values, wrong methods, missing or wrong auth) and fuzzing phases, with
FUZZ_EXAMPLES generated cases per operation and a fixed seed, so the run is repeatable
(INSPECT_FUZZ_EXAMPLES / INSPECT_FUZZ_SEED change them; the longer run against the full stack,
Prefect included, is `benchmarks/fuzz_contract.py`). Checks: every response conforms to its
documented status codes, content type, headers and schema; invalid input is refused; a missing
or wrong key is refused; no 5xx.

This server has no Prefect (its URL points at a closed port): operations that submit or read jobs
answer their documented 503 "Job orchestration unavailable", the one 5xx allowed here. Requests
this test found answered wrongly are kept in test_contract_regressions.py.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tests.integration.api_server import KeyedServer
from tests.integration.fuzz_support import failures_of, run_schemathesis, summary_of

FUZZ_EXAMPLES = int(os.environ.get("INSPECT_FUZZ_EXAMPLES", "10"))
FUZZ_SEED = int(os.environ.get("INSPECT_FUZZ_SEED", "20261130"))


def test_every_operation_honours_its_contract(keyed_server: KeyedServer, tmp_path: Path) -> None:
    code, output = run_schemathesis(keyed_server.base_url, keyed_server.key, tmp_path / "report", FUZZ_EXAMPLES,
                                    seed=FUZZ_SEED,
                                    prefect=False, timeout=900)
    summary = summary_of(output)
    print(summary)  # the figures: operations, cases generated, failures
    assert code == 0, failures_of(output)[:20000]
    tested = re.search(r"Tested: (\d+)", summary)
    assert tested is not None and int(tested.group(1)) >= 45, summary  # the whole API, not a handful
