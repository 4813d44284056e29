"""The anomalib models the platform offers, and what anomalib does not say about them.

The bottom of the catalog: plain data, no imports of anomalib. Which architectures are offered,
which backbones each accepts, which parameters the platform fixes. ``introspection`` reads the
rest from anomalib's classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Fixed by the platform: a randomly initialised backbone scores near chance (AUROC ~0.5 on MTD).
FIXED_PARAMS: dict[str, Any] = {"pre_trained": True}
# Lightning trainer setting offered on every architecture; models that fit in one pass override it.
MAX_EPOCHS = "max_epochs"
DEFAULT_MAX_EPOCHS = 10
GENERIC_BACKBONES = ("mobilenetv2_100", "tf_efficientnet_lite0", "resnet18", "wide_resnet50_2")
# PatchCore's memory-bank cap (patches; the platform's parameter ``coreset_max_size``). Each live frame
# searches the whole bank: 1,000 training tiles at anomalib's 10 % keep 78k patches, p95 7.9x a 60-tile
# model's (6,144). With 8,192: p95 1.24x, image AUROC +0.001 against uncapped; 12,288 was already 1.76x
# (benchmarks/patchcore_scale.py --cases cap; docs/architecture.md, "PatchCore at scale").
PATCHCORE_MAX_BANK = 8_192


@dataclass(frozen=True)
class PlatformParameter:
    """A training parameter the platform adds to a model (anomalib's class does not take it)."""

    name: str
    type: str  # JSON type
    default: Any
    description: str
    nullable: bool = False
    minimum: int | None = None


@dataclass(frozen=True)
class Offering:
    """An anomalib model the platform offers, plus what anomalib does not say about it."""

    name: str  # API name
    class_name: str  # attribute of ``anomalib.models``
    display_name: str
    # Backbones the model's code accepts, when it is not any timm CNN (None: GENERIC_BACKBONES).
    backbones: tuple[str, ...] | None = None
    note: str | None = None  # added to the reason when unavailable
    # Relative hints for people choosing (training time on a 2-core CPU; image AUROC on real parts and
    # anomalib's published MVTec figures): speed "fast" | "medium" | "slow", accuracy "high" | "good" | "fair".
    speed: str = "medium"
    accuracy: str = "good"
    # The platform's advice for a first model (listed first by the console).
    recommended: bool = False
    summary: str = ""  # one line: what the model does, in plain words
    extra_parameters: tuple[PlatformParameter, ...] = ()


OFFERINGS: tuple[Offering, ...] = (
    Offering("patchcore", "Patchcore", "PatchCore", speed="slow", accuracy="high", recommended=True,
             summary="Compares each image patch with a memory bank of normal patches; the most accurate, "
                     "slower to fit",
             extra_parameters=(PlatformParameter(
                 "coreset_max_size", "integer", PATCHCORE_MAX_BANK, nullable=True, minimum=1,
                 description="Most patches kept in the memory bank (the coreset is the smaller of this and "
                             "coreset_sampling_ratio x training patches). Every image is compared with the whole "
                             "bank, so this bounds inference time on large training sets; null keeps anomalib's "
                             "size (slower inference)."),)),
    Offering("padim", "Padim", "PaDiM", speed="fast", accuracy="good", recommended=True,
             summary="A Gaussian of normal features per patch position; fits in one pass, seconds on a CPU"),
    Offering(
        "efficientad",
        "EfficientAd",
        "EfficientAD",
        note="it also downloads its pretrained teacher network at fit time, and its standard 70,000 "
        "training steps take about two days on a 2-core CPU",
        speed="slow", accuracy="high",
        summary="A student-teacher network with an autoencoder; fast inference, very long training",
    ),
    Offering("stfpm", "Stfpm", "STFPM", speed="medium", accuracy="good",
             summary="A student network learns to copy a pretrained teacher on normal images"),
    Offering(
        "fastflow",
        "Fastflow",
        "FastFlow",
        backbones=("resnet18", "wide_resnet50_2", "cait_m48_448", "deit_base_distilled_patch16_384"),
        speed="medium", accuracy="good",
        summary="A 2D normalising flow models the distribution of normal features",
    ),
    Offering("dfm", "Dfm", "DFM", speed="fast", accuracy="fair",
             summary="PCA of deep features; one pass, very light"),
    # Its decoder mirrors a ResNet (anomalib.models.components.backbone.resnet_decoder).
    Offering("reverse_distillation", "ReverseDistillation", "Reverse Distillation",
             backbones=("resnet18", "resnet50", "wide_resnet50_2"), speed="slow", accuracy="good",
             summary="A decoder student reconstructs the teacher's features from a compact embedding"),
    Offering("draem", "Draem", "DRAEM", speed="slow", accuracy="fair",
             summary="Learns to reconstruct and segment synthetic defects; trained for many epochs"),
    # anomalib's cfa SUPPORTED_BACKBONES minus efficientnet_b5, which raises NotImplementedError.
    Offering("cfa", "Cfa", "CFA", backbones=("vgg19_bn", "resnet18", "wide_resnet50_2"), speed="medium",
             accuracy="good", summary="Coupled-hypersphere feature adaptation around normal patch features"),
    Offering("supersimplenet", "Supersimplenet", "SuperSimpleNet", speed="medium", accuracy="high",
             summary="Feature adaptor plus a discriminator trained on synthetic feature-space defects"),
    Offering("cflow", "Cflow", "CFLOW", speed="slow", accuracy="good",
             summary="Conditional normalising flows on multi-scale features with positional encoding"),
    Offering("dfkde", "Dfkde", "DFKDE", speed="fast", accuracy="fair",
             summary="Kernel density estimate of reduced deep features; one pass"),
)


class ParameterError(ValueError):
    """Unknown architecture or parameter, or a value of the wrong type: the API answers 422."""


def architecture_names() -> list[str]:
    return [offering.name for offering in OFFERINGS]
