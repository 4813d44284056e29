"""The trainable-model catalog (introspected from anomalib) and parameter validation."""

from __future__ import annotations

import json

import pytest
from anomalib.models.image.reverse_distillation.anomaly_map import AnomalyMapGenerationMode

from infra.anomaly import backbones, catalog
from infra.anomaly.catalog import ParameterError, validate_parameters

REQUIRED = {
    "patchcore",
    "padim",
    "efficientad",
    "stfpm",
    "fastflow",
    "dfm",
    "reverse_distillation",
    "draem",
    "cfa",
    "supersimplenet",
}
JSON_TYPES = {"string", "integer", "number", "boolean", "array", "object"}


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a factory machine: the Hugging Face hub does not answer."""
    monkeypatch.setattr(backbones, "hub_reachable", lambda timeout=2.0: False)


@pytest.fixture
def entries(offline: None, tmp_path) -> dict[str, dict]:
    return {entry["name"]: entry for entry in catalog.catalog(tmp_path / "hub")}


def test_catalog_lists_the_required_architectures_with_json_schemas(entries: dict[str, dict]) -> None:
    assert set(entries) >= REQUIRED
    json.dumps(list(entries.values()))  # the API returns it as it is
    for entry in entries.values():
        assert entry["display_name"] and entry["description"]
        assert entry["parameters"]["max_epochs"]["type"] == "integer"
        for name, spec in entry["parameters"].items():
            assert spec["type"] in JSON_TYPES, (entry["name"], name)
            # Objects (pre/post-processor, evaluator, visualizer) and worker-local paths are not offered.
            assert name not in {"pre_processor", "post_processor", "evaluator", "visualizer", "dtd_dir"}
            if "options" in spec and spec["default"] is not None:
                assert spec["default"] in spec["options"], (entry["name"], name)


def test_values_come_from_anomalib_signatures_and_docstrings(entries: dict[str, dict]) -> None:
    patchcore = entries["patchcore"]["parameters"]
    assert patchcore["coreset_sampling_ratio"] == {
        "type": "number",
        "default": 0.1,
        "description": "Ratio for coreset sampling to subsample embeddings.",
    }
    assert patchcore["precision"]["options"] == ["float32", "float16"]  # from the PrecisionType enum
    assert entries["reverse_distillation"]["parameters"]["anomaly_map_mode"]["options"] == ["add", "multiply"]
    assert entries["patchcore"]["description"].startswith("PatchCore")
    assert "pre_trained" not in patchcore  # fixed: a random backbone scores near chance


def test_offline_backbones_and_their_layer_defaults(entries: dict[str, dict]) -> None:
    backbone = entries["patchcore"]["parameters"]["backbone"]
    assert {"mobilenetv2_100", "tf_efficientnet_lite0", "wide_resnet50_2"} <= set(backbone["options"])
    assert backbone["available_offline"] == ["mobilenetv2_100", "tf_efficientnet_lite0"]
    # anomalib's default (wide_resnet50_2) has no weights offline, so the default moves to one that has.
    assert backbone["default"] == "mobilenetv2_100"
    assert entries["patchcore"]["parameters"]["layers"]["default"] == ["blocks.2", "blocks.4"]
    assert entries["padim"]["parameters"]["n_features"]["default"] == 128


def test_availability_says_why(entries: dict[str, dict]) -> None:
    efficientad = entries["efficientad"]
    assert efficientad["available"] is False
    assert "not available offline" in efficientad["unavailable_reason"].lower()
    assert "imagenette" in efficientad["unavailable_reason"]
    assert entries["fastflow"]["available"] is False  # only ResNet/CaiT/DeiT backbones: no offline weights
    assert "backbones" in entries["fastflow"]["unavailable_reason"]
    for name in ("patchcore", "padim", "stfpm", "dfm", "supersimplenet"):
        assert entries[name]["available"] is True
        assert entries[name]["unavailable_reason"] is None


def test_unknown_architecture_and_parameter(offline: None) -> None:
    with pytest.raises(ParameterError, match="unknown architecture 'nope'.*patchcore"):
        validate_parameters("nope", {})
    with pytest.raises(ParameterError, match="unknown parameter.*colour.*accepted: backbone"):
        validate_parameters("padim", {"colour": "red"})
    with pytest.raises(ParameterError, match="JSON object"):
        validate_parameters("padim", ["backbone"])  # type: ignore[arg-type]
    # anomalib's own spellings are accepted too.
    assert validate_parameters("efficient_ad", {})["max_epochs"] == catalog.DEFAULT_MAX_EPOCHS


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"coreset_sampling_ratio": "0.1"}, "must be of type number, got string"),
        ({"num_neighbors": 9.5}, "must be of type integer, got number"),
        ({"num_neighbors": True}, "must be of type integer, got boolean"),
        ({"layers": "blocks.2"}, "must be of type array"),
        ({"layers": [2, 4]}, "must hold string items"),
        ({"precision": "float64"}, "must be one of float32, float16"),
        ({"backbone": "vit_giant"}, "must be one of"),
        ({"max_epochs": "3"}, "must be of type integer"),
        ({"backbone": None}, "may not be null"),
    ],
)
def test_wrong_types_are_refused(offline: None, params: dict, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        validate_parameters("patchcore", params)


def test_integer_is_accepted_where_a_number_is_expected(offline: None) -> None:
    assert validate_parameters("patchcore", {"coreset_sampling_ratio": 1})["coreset_sampling_ratio"] == 1


def test_layer_names_are_checked_against_the_backbone(offline: None) -> None:
    # anomalib would only warn, and silently drop the next valid layer as well.
    with pytest.raises(ParameterError, match=r"no layer\(s\) features.6.*blocks.0, blocks.1, blocks.2"):
        validate_parameters("padim", {"backbone": "mobilenetv2_100", "layers": ["blocks.2", "features.6"]})
    with pytest.raises(ParameterError, match="no layer"):
        validate_parameters("patchcore", {"backbone": "mobilenetv2_100", "layers": ["layer2", "layer3"]})
    with pytest.raises(ParameterError, match="twice"):
        validate_parameters("patchcore", {"backbone": "mobilenetv2_100", "layers": ["blocks.2", "blocks.2"]})
    with pytest.raises(ParameterError, match="at least one layer"):
        validate_parameters("patchcore", {"backbone": "mobilenetv2_100", "layers": []})
    with pytest.raises(ParameterError, match="no layer"):
        validate_parameters("dfm", {"backbone": "tf_efficientnet_lite0", "layer": "layer3"})
    given = validate_parameters("patchcore", {"backbone": "tf_efficientnet_lite0", "layers": ["blocks.1", "blocks.6"]})
    assert given["layers"] == ["blocks.1", "blocks.6"]


def test_defaults_follow_the_backbone(offline: None) -> None:
    padim = validate_parameters("padim", {"backbone": "tf_efficientnet_lite0"})
    assert padim["layers"] == ["blocks.2", "blocks.4"]
    assert padim["n_features"] == 40 + 112  # all channels: anomalib has no default for this backbone
    resnet = validate_parameters("padim", {"backbone": "resnet18"})
    assert resnet["layers"] == ["layer1", "layer2", "layer3"] and resnet["n_features"] == 100
    assert validate_parameters("dfm", {"backbone": "mobilenetv2_100"})["layer"] == "blocks.4"
    assert validate_parameters("stfpm", {})["layers"] == ["blocks.2", "blocks.4"]
    assert validate_parameters("patchcore", {"backbone": "resnet18"})["layers"] == ["layer2", "layer3"]
    with pytest.raises(ParameterError, match="n_features' must be between 1 and 128"):
        validate_parameters("padim", {"backbone": "mobilenetv2_100", "n_features": 500})


def test_max_epochs(offline: None) -> None:
    assert validate_parameters("stfpm", {"max_epochs": 3})["max_epochs"] == 3
    # PaDiM and PatchCore fit in one pass; anomalib overrides any other value, so the resolved value says so.
    assert validate_parameters("padim", {"max_epochs": 5})["max_epochs"] == 1
    with pytest.raises(ParameterError, match="at least 1"):
        validate_parameters("stfpm", {"max_epochs": 0})


def test_resolved_parameters_round_trip_and_become_model_kwargs(offline: None) -> None:
    resolved = validate_parameters("reverse_distillation", {"anomaly_map_mode": "multiply"})
    assert validate_parameters("reverse_distillation", resolved) == resolved  # stored, then re-validated
    kwargs = catalog.model_kwargs("reverse_distillation", resolved)
    assert kwargs["anomaly_map_mode"] is AnomalyMapGenerationMode.MULTIPLY
    assert kwargs["pre_trained"] is True and "max_epochs" not in kwargs
    draem = catalog.model_kwargs("draem", validate_parameters("draem", {"beta": [0.2, 0.8]}))
    assert draem["beta"] == (0.2, 0.8)


def test_patchcore_memory_bank_cap_is_a_platform_parameter(entries: dict[str, dict], offline: None) -> None:
    spec = entries["patchcore"]["parameters"]["coreset_max_size"]
    assert spec["type"] == "integer" and spec["default"] == 8_192 and spec["minimum"] == 1 and spec["nullable"]
    assert "inference" in spec["description"]
    assert "coreset_max_size" not in entries["padim"]["parameters"]
    resolved = validate_parameters("patchcore", {"backbone": "mobilenetv2_100"})
    assert resolved["coreset_max_size"] == 8_192  # a quality engineer never sets it
    assert validate_parameters("patchcore", {"coreset_max_size": None})["coreset_max_size"] is None  # no cap
    assert "coreset_max_size" not in catalog.model_kwargs("patchcore", resolved)  # anomalib's class has no such arg
    for wrong, message in ((0, "at least 1"), (1.5, "must be of type integer"), ("big", "must be of type")):
        with pytest.raises(ParameterError, match=message):
            validate_parameters("patchcore", {"coreset_max_size": wrong})
