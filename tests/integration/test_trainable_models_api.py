"""GET /api/trainable-models: the introspected catalog through the real app."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from infra.anomaly import backbones

REQUIRED = {"patchcore", "padim", "efficientad", "stfpm", "fastflow", "dfm", "reverse_distillation", "draem", "cfa",
            "supersimplenet"}


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backbones, "hub_reachable", lambda timeout=2.0: False)


def test_lists_architectures_with_parameter_schemas(client: TestClient, offline: None) -> None:
    response = client.get("/api/trainable-models")
    assert response.status_code == 200, response.text
    models = {entry["name"]: entry for entry in response.json()}
    assert set(models) >= REQUIRED
    for entry in models.values():
        assert set(entry) == {"name", "display_name", "description", "summary", "speed", "accuracy", "recommended",
                              "available", "unavailable_reason", "parameters"}
        assert entry["parameters"]["max_epochs"]["type"] == "integer"
        for spec in entry["parameters"].values():
            # Absent descriptors are left out rather than sent as null; only a default may be null.
            assert "default" in spec and all(value is not None for key, value in spec.items() if key != "default")

    patchcore = models["patchcore"]
    assert patchcore["display_name"] == "PatchCore" and patchcore["available"] is True
    backbone = patchcore["parameters"]["backbone"]
    assert backbone["type"] == "string" and "options" in backbone
    assert backbone["available_offline"] == ["mobilenetv2_100", "tf_efficientnet_lite0"]
    assert patchcore["parameters"]["layers"] == {
        "type": "array",
        "default": ["blocks.2", "blocks.4"],
        "description": "Names of layers to extract features from.",
    }
    # The platform's memory-bank cap: set by default, documented for an expert who wants another size.
    cap = patchcore["parameters"]["coreset_max_size"]
    assert (cap["type"], cap["default"], cap["minimum"], cap["nullable"]) == ("integer", 8_192, 1, True)
    assert "memory bank" in cap["description"]
    assert models["efficientad"]["available"] is False
    assert "not available offline" in models["efficientad"]["unavailable_reason"].lower()
    # Answered from the cache the second time (introspection imports anomalib once per process).
    assert client.get("/api/trainable-models").json() == response.json()


def test_is_in_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/api/openapi.json").json()["paths"]
    assert "get" in paths["/api/trainable-models"]
