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


@dataclass(frozen=True)
class Offering:
    """An anomalib model the platform offers, plus what anomalib does not say about it."""

    name: str  # API name
    class_name: str  # attribute of ``anomalib.models``
    display_name: str
    # Backbones the model's code accepts, when it is not any timm CNN (None: GENERIC_BACKBONES).
    backbones: tuple[str, ...] | None = None
    note: str | None = None  # added to the reason when unavailable


OFFERINGS: tuple[Offering, ...] = (
    Offering("patchcore", "Patchcore", "PatchCore"),
    Offering("padim", "Padim", "PaDiM"),
    Offering(
        "efficientad",
        "EfficientAd",
        "EfficientAD",
        note="it also downloads its pretrained teacher network at fit time, and its standard 70,000 "
        "training steps take about two days on a 2-core CPU",
    ),
    Offering("stfpm", "Stfpm", "STFPM"),
    Offering(
        "fastflow",
        "Fastflow",
        "FastFlow",
        backbones=("resnet18", "wide_resnet50_2", "cait_m48_448", "deit_base_distilled_patch16_384"),
    ),
    Offering("dfm", "Dfm", "DFM"),
    # Its decoder mirrors a ResNet (anomalib.models.components.backbone.resnet_decoder).
    Offering("reverse_distillation", "ReverseDistillation", "Reverse Distillation",
             backbones=("resnet18", "resnet50", "wide_resnet50_2")),
    Offering("draem", "Draem", "DRAEM"),
    # anomalib's cfa SUPPORTED_BACKBONES minus efficientnet_b5, which raises NotImplementedError.
    Offering("cfa", "Cfa", "CFA", backbones=("vgg19_bn", "resnet18", "wide_resnet50_2")),
    Offering("supersimplenet", "Supersimplenet", "SuperSimpleNet"),
    Offering("cflow", "Cflow", "CFLOW"),
    Offering("dfkde", "Dfkde", "DFKDE"),
)


class ParameterError(ValueError):
    """Unknown architecture or parameter, or a value of the wrong type: the API answers 422."""


def architecture_names() -> list[str]:
    return [offering.name for offering in OFFERINGS]
