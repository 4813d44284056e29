"""Backbone weights brought into an air-gapped plant: `POST /api/backbones/{name}`, `GET /api/backbones`,
`geti-inspect weights import`. The weights are made here from a randomly initialised timm resnet18
(no download): importing them unlocks the resnet-only architectures, and timm then loads exactly
these tensors offline, as anomalib's feature extractor does when it trains."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from api.cli import app as cli
from infra.anomaly import weights_check
from infra.anomaly.backbones import hub_cache_dir
from infra.anomaly.imported_weights import weights_key
from infra.settings import Settings

RESNET_ONLY = ("reverse_distillation", "fastflow", "cfa")  # no offline backbone of their own


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The conftest's settings with room for a resnet18 file (~45 MB)."""
    return Settings(data_dir=tmp_path / "data", max_upload_bytes=128 * 1024 * 1024)


@pytest.fixture(scope="module")
def resnet18_state() -> dict[str, torch.Tensor]:
    import timm

    torch.manual_seed(7)
    return timm.create_model("resnet18", pretrained=False).state_dict()


@pytest.fixture(scope="module")
def resnet18_pth(resnet18_state: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "resnet18-random.pth"
    torch.save(resnet18_state, path)
    return path


def _available(client: TestClient) -> dict[str, bool]:
    return {entry["name"]: entry["available"] for entry in client.get("/api/trainable-models").json()}


def _backbone(client: TestClient, name: str) -> dict:
    return next(entry for entry in client.get("/api/backbones").json() if entry["name"] == name)


def _timm_loads_offline(cache_dir: Path, backbone: str) -> dict[str, float]:
    """What anomalib's feature extractor gets from `timm.create_model(pretrained=True, features_only=True)`
    with no network: a sum per tensor (a fresh process, offline, pointed at the platform's cache)."""
    code = (f"import json, timm; m = timm.create_model({backbone!r}, pretrained=True, features_only=True); "
            "print(json.dumps({k: float(v.double().sum()) for k, v in m.state_dict().items()}))")
    env = {**os.environ, "HF_HUB_CACHE": str(cache_dir), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_imported_weights_unlock_architectures_and_train_offline(client: TestClient, settings: Settings,
                                                                 resnet18_state: dict, resnet18_pth: Path) -> None:
    before = _available(client)
    assert not any(before[name] for name in RESNET_ONLY), before
    assert _backbone(client, "resnet18")["installed"] is False
    assert _backbone(client, "mobilenetv2_100")["source"] == "shipped"

    with resnet18_pth.open("rb") as handle:
        response = client.post("/api/backbones/resnet18", files={"file": ("resnet18-random.pth", handle)})
    assert response.status_code == 201, response.text
    body = response.json()
    stored = client.app.state.store.get(weights_key("resnet18"))
    assert body["installed"] is True and body["source"] == "imported" and "padim" in body["architectures"]
    imported = body["imported"]
    assert imported["sha256"] == hashlib.sha256(stored).hexdigest()
    assert imported["source_sha256"] == hashlib.sha256(resnet18_pth.read_bytes()).hexdigest()
    assert (imported["format"], imported["layout"], imported["filename"]) == ("pth", "timm", "resnet18-random.pth")
    assert _backbone(client, "resnet18") == body

    after = _available(client)
    assert all(after[name] for name in RESNET_ONLY), after
    # PaDiM's own default backbone is resnet18: now that it loads here, it is the default again.
    padim = next(entry for entry in client.get("/api/trainable-models").json() if entry["name"] == "padim")
    assert padim["parameters"]["backbone"]["default"] == "resnet18"
    assert "resnet18" in padim["parameters"]["backbone"]["available_offline"]

    loaded = _timm_loads_offline(hub_cache_dir(settings.resolved_data_dir), "resnet18")
    for key, total in loaded.items():
        assert total == pytest.approx(float(resnet18_state[key].double().sum()), rel=1e-5, abs=1e-4), key


def test_bad_weights_are_refused_and_leave_nothing(client: TestClient, tmp_path: Path) -> None:
    def post(name: str, filename: str, data: bytes) -> tuple[int, str]:
        response = client.post(f"/api/backbones/{name}", files={"file": (filename, data)})
        return response.status_code, str(response.json()["detail"])

    assert post("resnet1000", "w.pth", b"x")[0] == 404
    assert post("../../etc", "w.pth", b"x")[0] in (404, 405)
    status, detail = post("resnet18", "weights.txt", b"plain text")
    assert status == 422 and "unsupported file type" in detail

    marker = tmp_path / "pwned"

    class Payload:  # unpickling this would run a shell command
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    status, detail = post("resnet18", "evil.pth", pickle.dumps({"conv1.weight": Payload()}))
    assert status == 422 and "cannot read" in detail and not marker.exists()

    import timm

    mobile = timm.create_model("mobilenetv2_100", pretrained=False).state_dict()
    from safetensors.torch import save

    status, detail = post("resnet18", "mobilenet.safetensors", save({k: v.contiguous() for k, v in mobile.items()}))
    assert status == 422 and "do not fit timm's resnet18" in detail
    assert list(client.app.state.store.list("backbones/")) == []
    assert _backbone(client, "resnet18")["installed"] is False


def test_the_checker_reads_wrapped_renamed_and_refuses_non_finite(resnet18_state: dict, tmp_path: Path) -> None:
    """In-process: the checks behind the subprocess (state dict wrappers and prefixes, torchvision's layout)."""
    import torchvision

    wrapped = tmp_path / "wrapped.pth"
    torch.save({"epoch": 3, "state_dict": {f"module.{key}": value for key, value in resnet18_state.items()}}, wrapped)
    fitted, layout = weights_check.fit_to_timm(weights_check.load_state(wrapped), "resnet18")
    assert layout == "timm" and torch.equal(fitted["fc.weight"], resnet18_state["fc.weight"])

    torch.manual_seed(1)
    torchvision_layout = torchvision.models.mobilenet_v2().state_dict()  # features.0.0.weight, ...
    fitted, layout = weights_check.fit_to_timm(torchvision_layout, "mobilenetv2_100")
    assert layout == "renamed" and torch.equal(fitted["conv_stem.weight"], torchvision_layout["features.0.0.weight"])

    broken = dict(resnet18_state)
    broken["conv1.weight"] = torch.full_like(broken["conv1.weight"], float("nan"))
    with pytest.raises(weights_check.WeightsRefused, match="NaN"):
        weights_check.fit_to_timm(broken, "resnet18")
    with pytest.raises(weights_check.WeightsRefused, match="shapes do not match"):
        weights_check.fit_to_timm({**resnet18_state, "fc.weight": torch.zeros(10, 512)}, "resnet18")


def test_the_command_line_imports_into_the_platforms_storage(tmp_path: Path, resnet18_pth: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    result = CliRunner().invoke(cli, ["weights", "import", "--backbone", "resnet18", str(resnet18_pth),
                                      "--data-dir", str(settings.data_dir)])
    assert result.exit_code == 0, result.output
    assert "imported resnet18" in result.output
    with TestClient(create_app(settings)) as client:
        assert _backbone(client, "resnet18")["source"] == "imported"
    refused = CliRunner().invoke(cli, ["weights", "import", "--backbone", "nope", str(resnet18_pth),
                                       "--data-dir", str(settings.data_dir)])
    assert refused.exit_code == 1 and "refused" in refused.output
