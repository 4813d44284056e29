"""Backbone and layer resolution: which backbones load here, which feature layers a choice means.

A layer name the backbone lacks is refused here, before training: anomalib only warns about it and
then also drops the next, valid layer.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from infra.anomaly import backbones
from infra.anomaly.introspection import Architecture
from infra.anomaly.offerings import ParameterError


def weights_ready(backbone: str, cache_dir: Path | None) -> bool:
    """Whether ``backbone``'s ImageNet weights load here (offline copy, cache, or a reachable hub)."""
    if backbones.hf_repo_id(backbone) is None:
        return False
    if backbones.hub_reachable():
        return True
    if backbones.shipped_weights_path(backbone) is not None:
        return True
    return cache_dir is not None and backbones.cached_weights(backbone, cache_dir) is not None


def available_offline(architecture: Architecture, cache_dir: Path | None) -> list[str]:
    """The backbone options whose weights load with no network."""
    spec = architecture.backbone_spec
    if spec is None or not spec.options:
        return []
    return [
        name
        for name in spec.options
        if backbones.shipped_weights_path(name) is not None
        or (cache_dir is not None and backbones.cached_weights(name, cache_dir) is not None)
    ]


def default_backbone(architecture: Architecture, cache_dir: Path | None) -> str | None:
    """anomalib's default when its weights load here, else the first option that does."""
    spec = architecture.backbone_spec
    if spec is None:
        return None
    if weights_ready(spec.default, cache_dir):
        return spec.default
    ready = [name for name in spec.options or () if weights_ready(name, cache_dir)]
    return ready[0] if ready else spec.default


def layer_names(backbone: str) -> list[str]:
    return [layer.name for layer in backbones.feature_layers(backbone)]


# Finest feature map a moved default may use: 1/4-scale maps of thin mobile backbones carry little
# signal and would make e.g. PaDiM's per-patch covariances 4 times larger.
MIN_MAPPED_STRIDE = 8


def default_layers(architecture: Architecture, backbone: str) -> list[str]:
    """anomalib's default layers, or for a backbone without those names the layers at the same strides.

    e.g. PatchCore's ``layer2``+``layer3`` (1/8, 1/16) on a ResNet become ``blocks.2``+``blocks.4`` on
    mobilenetv2_100 / tf_efficientnet_lite0; strides finer than 1/8 move up to 1/8.
    """
    param = architecture.layer_param
    spec = architecture.backbone_spec
    assert param is not None and spec is not None
    default = architecture.parameters[param].default
    wanted = [default] if isinstance(default, str) else list(default)
    target = backbones.feature_layers(backbone)
    if all(name in {layer.name for layer in target} for name in wanted):
        return wanted
    source = {layer.name: layer.reduction for layer in backbones.feature_layers(spec.default)}
    mapped: list[str] = []
    for name in wanted:
        if name not in source:
            continue
        stride = max(source[name], MIN_MAPPED_STRIDE)
        best = min(target, key=lambda layer: (abs(layer.reduction - stride), layer.reduction))
        if best.name not in mapped:
            mapped.append(best.name)
    return mapped


def resolve_layers(arch: Architecture, param: str, backbone: str, given: Any) -> Any:
    available = layer_names(backbone)
    if given is None:
        layers = default_layers(arch, backbone)
        return layers[-1] if param == "layer" else layers
    wanted = [given] if isinstance(given, str) else list(given)
    if not wanted:
        raise ParameterError(f"parameter '{param}' needs at least one layer of {backbone}: {', '.join(available)}")
    missing = [name for name in wanted if name not in available]
    if missing:
        raise ParameterError(
            f"backbone '{backbone}' has no layer(s) {', '.join(missing)}; its feature layers are {', '.join(available)}"
        )
    if len(set(wanted)) != len(wanted):
        raise ParameterError(f"parameter '{param}' lists a layer twice: {wanted}")
    return given


def padim_features(backbone: str, layers: list[str], given: int | None) -> int:
    channels = {layer.name: layer.channels for layer in backbones.feature_layers(backbone)}
    total = sum(channels[name] for name in layers)
    if given is not None:
        if not 0 < given <= total:
            raise ParameterError(f"parameter 'n_features' must be between 1 and {total} for these layers, got {given}")
        return given
    defaults = getattr(importlib.import_module("anomalib.models.image.padim.torch_model"), "_N_FEATURES_DEFAULTS", {})
    return min(defaults[backbone], total) if backbone in defaults else total
