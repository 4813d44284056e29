"""The single gate for training parameters.

The API calls :func:`validate_parameters` to answer 422 up front, the training flow calls it to get
the fully resolved keyword arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from infra.anomaly.introspection import get_architecture
from infra.anomaly.layers import default_backbone, padim_features, resolve_layers
from infra.anomaly.offerings import MAX_EPOCHS, ParameterError


def validate_parameters(
    architecture: str,
    params: Mapping[str, Any] | None = None,
    *,
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """Check training parameters and return them fully resolved (every parameter, JSON values).

    Raises :class:`ParameterError` for an unknown architecture or parameter, a wrong type, a
    value outside its choices, or a layer name the backbone does not have. Layers default for
    the chosen backbone; PaDiM gets ``n_features`` = all channels where anomalib has no default.
    ``cache_dir`` (the Hugging Face cache) only affects the default backbone.
    """
    arch = get_architecture(architecture)
    params = {} if params is None else params
    if not isinstance(params, Mapping):
        raise ParameterError("parameters must be a JSON object")
    unknown = sorted(set(params) - set(arch.parameters))
    if unknown:
        raise ParameterError(
            f"unknown parameter(s) for {arch.name}: {', '.join(unknown)}; accepted: {', '.join(arch.parameters)}"
        )
    given = {name: arch.parameters[name].check(value) for name, value in params.items()}
    resolved = {name: spec.default for name, spec in arch.parameters.items()}
    resolved.update(given)

    if arch.backbone_spec is not None:
        backbone = given.get("backbone") or default_backbone(arch, cache_dir)
        resolved["backbone"] = backbone
        param = arch.layer_param
        if param is not None:
            resolved[param] = resolve_layers(arch, param, backbone, given.get(param))
        if arch.name == "padim":
            resolved["n_features"] = padim_features(backbone, resolved["layers"], given.get("n_features"))

    for name in arch.platform_parameters:
        spec, value = arch.parameters[name], resolved[name]
        if spec.minimum is not None and value is not None and value < spec.minimum:
            raise ParameterError(f"parameter '{name}' must be at least {spec.minimum}, got {value}")
    epochs = resolved[MAX_EPOCHS]
    if epochs < 1:
        raise ParameterError(f"parameter '{MAX_EPOCHS}' must be at least 1, got {epochs}")
    if arch.fixed_epochs:
        resolved[MAX_EPOCHS] = arch.fixed_epochs
    return resolved
