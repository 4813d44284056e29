"""A frozen backbone with its batch norms folded into the convolutions before them.

PatchCore only ever runs its backbone in eval mode, where a batch norm is a fixed per-channel scale and
shift: folded into the preceding convolution's weights and bias it costs nothing, instead of one more
full pass over every feature map (about a third of MobileNetV2's convolution time on this CPU). The
folded copy computes the same features to float rounding; :func:`folded_copy` checks that on a probe
image and returns ``None`` when it does not hold (a layout where a convolution's output also feeds
something other than the batch norm listed after it), so the caller keeps the original.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

# Largest relative difference from the original features that still counts as float rounding.
TOLERANCE = 1e-3


class _AfterNorm(nn.Module):
    """What is left of timm's ``BatchNormAct2d`` once the norm is folded: its dropout and activation."""

    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.drop = getattr(norm, "drop", nn.Identity())
        self.act = getattr(norm, "act", nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(x))


def _fold(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> None:
    scale = norm.weight.detach() / torch.sqrt(norm.running_var + norm.eps)
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(norm.running_mean)
    conv.weight = nn.Parameter(conv.weight.detach() * scale.reshape(-1, 1, 1, 1), requires_grad=False)
    conv.bias = nn.Parameter((bias - norm.running_mean) * scale + norm.bias.detach(), requires_grad=False)


def _fold_children(module: nn.Module) -> int:
    folded = 0
    children = list(module.named_children())
    for (_, first), (name, second) in zip(children, children[1:], strict=False):
        if (isinstance(first, nn.Conv2d) and isinstance(second, nn.BatchNorm2d) and second.affine
                and second.track_running_stats and first.out_channels == second.num_features):
            _fold(first, second)
            setattr(module, name, _AfterNorm(second))
            folded += 1
    for _, child in module.named_children():
        folded += _fold_children(child)
    return folded


def folded_copy(backbone: nn.Module, probe_size: tuple[int, int] = (64, 64)) -> nn.Module | None:
    """An eval-mode copy of ``backbone`` with every (Conv2d, BatchNorm2d) pair folded; ``None`` when there
    is nothing to fold or the copy's outputs on a probe image differ beyond float rounding."""
    original = backbone.eval()
    folded = copy.deepcopy(original).eval()
    if _fold_children(folded) == 0:
        return None
    probe = torch.rand(1, 3, *probe_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = original(probe), folded(probe)
    pairs = zip(expected.values(), got.values(), strict=True) if isinstance(expected, dict) else [(expected, got)]
    for want, have in pairs:
        if want.shape != have.shape or (want - have).abs().max() > TOLERANCE * want.abs().max().clamp_min(1e-6):
            return None
    return folded
