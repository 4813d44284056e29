"""Batch norms folded into the convolutions before them: same features, the original untouched, refusal when unsafe."""

from __future__ import annotations

import torch
from anomalib.models import Patchcore
from anomalib.models.components.feature_extractors import TimmFeatureExtractor
from torch import nn

from flows.training.batchnorm_folding import folded_copy
from flows.training.patchcore import fast_patchcore


def _norms(module: nn.Module) -> int:
    return sum(isinstance(child, nn.BatchNorm2d) for child in module.modules())


def _trained_like(module: nn.Module, seed: int) -> nn.Module:
    """Random running statistics and affine parameters, as a trained network has (fresh ones fold to nothing)."""
    generator = torch.Generator().manual_seed(seed)
    for norm in module.modules():
        if isinstance(norm, nn.BatchNorm2d):
            size = norm.num_features
            norm.running_mean.copy_(torch.randn(size, generator=generator))
            norm.running_var.copy_(torch.rand(size, generator=generator) * 2 + 0.1)
            norm.weight.data.copy_(torch.randn(size, generator=generator))
            norm.bias.data.copy_(torch.randn(size, generator=generator))
    return module.eval()


def test_folded_mobilenet_gives_the_same_features_and_leaves_the_original_alone() -> None:
    backbone = _trained_like(TimmFeatureExtractor("mobilenetv2_100", ["blocks.2", "blocks.4"], pre_trained=False), 1)
    before = {key: value.clone() for key, value in backbone.state_dict().items()}
    folded = folded_copy(backbone)
    assert folded is not None and _norms(folded) == 0 and _norms(backbone) > 0
    image = torch.rand(2, 3, 96, 128, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected, got = backbone(image), folded(image)
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.allclose(got[key], expected[key], rtol=1e-4, atol=1e-4 * expected[key].abs().max())
    assert all(torch.equal(value, before[key]) for key, value in backbone.state_dict().items())


class _SharedConv(nn.Module):
    """The convolution's output feeds the norm AND the sum: folding the norm into it would change the sum."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y + self.norm(y)


def test_refuses_a_layout_where_folding_changes_the_output() -> None:
    assert folded_copy(_trained_like(_SharedConv(), 3)) is None
    assert folded_copy(nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU())) is None  # nothing to fold


def test_fast_patchcore_runs_the_folded_copy_and_restores_anomalib_s_backbone() -> None:
    patchcore = Patchcore(backbone="resnet18", layers=["layer2"], pre_trained=False, coreset_sampling_ratio=0.1)
    original = _trained_like(patchcore.model.feature_extractor, 4)
    keys = list(patchcore.state_dict())
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = original(image)["layer2"]
    with fast_patchcore(patchcore) as stats, torch.no_grad():
        assert stats["folded"] == 1 and _norms(patchcore.model.feature_extractor) == 0
        got = patchcore.model.feature_extractor(image)["layer2"]
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max())
    assert patchcore.model.feature_extractor is original and list(patchcore.state_dict()) == keys
