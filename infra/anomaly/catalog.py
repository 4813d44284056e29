"""Catalog of trainable anomaly models as the API shows it, and the public face of ``infra.anomaly``.

The rooms below, each calling only downwards:
``offerings`` (what the platform offers) <- ``introspection`` (anomalib's classes read as JSON
parameters) <- ``layers`` (backbones with weights here, layer names) <- ``validation`` (the gate
for training parameters) <- this module (availability and descriptions for this machine).
The names the API, the flows and the CLI use are re-exported here, for code that wants "the catalog".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infra.anomaly import backbones
from infra.anomaly.introspection import Architecture, ParameterSpec, architectures, get_architecture, model_kwargs
from infra.anomaly.layers import available_offline, default_backbone, default_layers, layer_names, weights_ready
from infra.anomaly.offerings import DEFAULT_MAX_EPOCHS, MAX_EPOCHS, ParameterError, architecture_names
from infra.anomaly.validation import validate_parameters

__all__ = [
    "DEFAULT_MAX_EPOCHS",
    "MAX_EPOCHS",
    "Architecture",
    "ParameterError",
    "ParameterSpec",
    "architecture_names",
    "availability",
    "available_offline",
    "catalog",
    "default_backbone",
    "default_layers",
    "describe",
    "get_architecture",
    "layer_names",
    "model_kwargs",
    "validate_parameters",
]


def availability(arch: Architecture, cache_dir: Path | None) -> tuple[bool, str | None]:
    """Whether the architecture can train here, and why not."""
    online = backbones.hub_reachable()
    reasons: list[str] = []
    if arch.downloads and not online:
        reasons.append(f"it downloads {', '.join(arch.downloads)} at fit time and there is no internet access here")
    spec = arch.backbone_spec
    if spec is not None and not any(weights_ready(name, cache_dir) for name in spec.options or ()):
        reasons.append(
            f"none of its backbones ({', '.join(spec.options or ())}) has ImageNet weights here "
            "and the Hugging Face hub is unreachable"
        )
    if not reasons:
        return True, None
    reason = "Not available offline: " + "; ".join(reasons)
    if arch.offering.note:
        reason += f"; {arch.offering.note}"
    return False, reason + "."


def describe(arch: Architecture, cache_dir: Path | None = None) -> dict[str, Any]:
    """One catalog entry as the API returns it (defaults are those that apply on this machine)."""
    parameters = {name: spec.to_json() for name, spec in arch.parameters.items()}
    if arch.backbone_spec is not None:
        backbone = default_backbone(arch, cache_dir)
        parameters["backbone"]["default"] = backbone
        parameters["backbone"]["available_offline"] = available_offline(arch, cache_dir)
        resolved = validate_parameters(arch.name, {"backbone": backbone}, cache_dir=cache_dir)
        for name in (arch.layer_param, "n_features" if arch.name == "padim" else None):
            if name is not None:
                parameters[name]["default"] = resolved[name]
    available, reason = availability(arch, cache_dir)
    return {
        "name": arch.name,
        "display_name": arch.offering.display_name,
        "description": arch.description,
        "summary": arch.offering.summary or arch.description,
        "speed": arch.offering.speed,
        "accuracy": arch.offering.accuracy,
        "recommended": arch.offering.recommended,
        "available": available,
        "unavailable_reason": reason,
        "parameters": parameters,
    }


def catalog(cache_dir: Path | None = None) -> list[dict[str, Any]]:
    """Every offered architecture, described for this machine."""
    return [describe(arch, cache_dir) for arch in architectures().values()]


def warm_up(cache_dir: Path | None) -> None:
    """Load what a first training request would: anomalib's model classes (~10 s on 2 cores) and the
    backbone introspection behind parameter checks (~2.5 s the first time). `serve` calls it while
    its stack starts."""
    for name in architecture_names():
        try:
            validate_parameters(name, {}, cache_dir=cache_dir)
        except ParameterError:
            continue  # refused here for a reason a request will report
