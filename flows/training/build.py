"""Build an anomalib model from catalog parameters: one construction path for training and re-export.

Rebuilding a model for export from a checkpoint goes through the same function, so the
pre-processing baked into the exported graph (resize, the backbone's normalisation) is always
the one the model was trained with.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from anomalib import PrecisionType
from anomalib.models.components import AnomalibModule
from torchvision.transforms.v2 import Compose, Normalize, Transform

from infra.anomaly import backbones
from infra.anomaly.catalog import get_architecture, model_kwargs

DEFAULT_IMAGE_SIZE = (256, 256)


def _normalise_for_backbone(transform: Transform, backbone: str) -> None:
    """Use the statistics the backbone was trained with (anomalib always applies ImageNet's)."""
    mean, std = backbones.normalisation(backbone)
    steps = transform.transforms if isinstance(transform, Compose) else [transform]
    for step in steps:
        if isinstance(step, Normalize):
            step.mean, step.std = list(mean), list(std)


def build_model(
    architecture: str,
    resolved: dict[str, Any],
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
) -> AnomalibModule:
    """The anomalib model for fully resolved parameters (see ``catalog.validate_parameters``)."""
    arch = get_architecture(architecture)
    cls = arch.model_class
    pre_processor = cls.configure_pre_processor(image_size=tuple(image_size))
    backbone = resolved.get("backbone")
    if backbone and pre_processor.transform is not None:
        _normalise_for_backbone(pre_processor.transform, backbone)
        # The exported graph uses a copy made at construction, so construct again with the new values.
        pre_processor = type(pre_processor)(transform=pre_processor.transform)
    # No visualizer: anomalib's draws and writes a PNG per test image (re-reading the full-size original),
    # which nothing here reads; on large images it was a third of the test pass.
    return cls(**model_kwargs(arch.name, resolved), pre_processor=pre_processor, visualizer=False)


# Enums anomalib saves in a checkpoint's hyper-parameters (PatchCore's `precision`): unpickling one only
# looks a member up by value, so allowing these classes lets no code in.
CHECKPOINT_ENUMS = (PrecisionType,)


class UnsafeCheckpoint(ValueError):
    """A checkpoint that is not plain weights: it could run code when unpickled, so it is not loaded."""


def read_weights(checkpoint: Path) -> dict[str, Any]:
    """The state dict of a Lightning checkpoint, read safely (before any model is built for it).

    ``weights_only=True``: the unpickler builds only tensors and plain containers, which is all the
    platform's checkpoints hold, and refuses anything else. A file planted in the bucket with a
    pickled callable would otherwise run that code on the worker."""
    try:
        with torch.serialization.safe_globals(list(CHECKPOINT_ENUMS)):
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise UnsafeCheckpoint(f"it holds more than weights ({error})") from None
    if not isinstance(state, dict) or not isinstance(state.get("state_dict"), dict):
        raise UnsafeCheckpoint("it holds no state_dict of weights")
    return state["state_dict"]


def load_weights(model: AnomalibModule, state_dict: dict[str, Any]) -> AnomalibModule:
    """A freshly built model with a checkpoint's state (memory banks included), from :func:`read_weights`."""
    model.load_state_dict(state_dict)
    return model.eval()
