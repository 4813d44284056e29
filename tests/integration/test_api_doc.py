"""docs/api.md documents exactly the operations the app serves (its OpenAPI document)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.conftest import REPO_ROOT

API_DOC = REPO_ROOT / "docs" / "api.md"
OPERATION_HEADING = re.compile(r"^### `(GET|POST|PUT|PATCH|DELETE) (/\S+)`$", re.MULTILINE)


def test_every_operation_is_documented_and_every_documented_one_exists(client: TestClient) -> None:
    openapi = client.get("/api/openapi.json").json()
    served = {(method.upper(), path) for path, operations in openapi["paths"].items() for method in operations}
    documented = OPERATION_HEADING.findall(API_DOC.read_text())
    assert len(documented) == len(set(documented)), "an operation is documented twice in docs/api.md"
    missing = sorted(served - set(documented), key=lambda op: (op[1], op[0]))
    stale = sorted(set(documented) - served, key=lambda op: (op[1], op[0]))
    assert not missing and not stale, (
        "docs/api.md is out of step with /api/openapi.json.\n"
        + "".join(f"  undocumented: ### `{method} {path}`\n" for method, path in missing)
        + "".join(f"  no longer served: ### `{method} {path}`\n" for method, path in stale))


def test_the_readme_points_at_the_reference_in_the_repository() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert "docs/api.md" in readme and "shared/api-reference.md" not in readme
