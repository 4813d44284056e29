"""Catalog of trainable anomaly models, introspected from anomalib's model classes.

Descriptions, parameter names, types, defaults, choices and help texts come from the classes
themselves (signature, type hints, docstring), so a new anomalib release updates the catalog.
What anomalib does not expose is stated here, in one place: which architectures the platform
offers, which backbones each accepts, and which parameters the platform fixes.

:func:`validate_parameters` is the single gate for training parameters: the API calls it to answer
422 up front, the training flow calls it to get the fully resolved keyword arguments.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path, PurePath
from typing import Any

from infra.anomaly import backbones

# Constructor arguments that take Python objects (processors, evaluators, ...), not JSON values.
_OBJECT_PARAMS = frozenset({"self", "pre_processor", "post_processor", "evaluator", "visualizer"})
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


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    type: str  # string | integer | number | boolean | array | object
    default: Any
    description: str | None = None
    options: tuple[Any, ...] | None = None
    nullable: bool = False
    accepts: frozenset[str] = frozenset()
    item_type: str | None = None  # JSON type of array items, when known
    enum_type: type[enum.Enum] | None = None  # converted back to the enum for the model
    as_tuple: bool = False  # the model wants a tuple, JSON brings a list

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "default": self.default}
        if self.options is not None:
            out["options"] = list(self.options)
        if self.nullable:
            out["nullable"] = True
        if self.description:
            out["description"] = self.description
        return out

    def check(self, value: Any) -> Any:
        """The value in JSON form if it fits this parameter, else :class:`ParameterError`."""
        if value is None:
            if self.nullable:
                return None
            raise ParameterError(f"parameter '{self.name}' may not be null")
        kind = _json_kind(value)
        if kind not in self.accepts and not (kind == "integer" and "number" in self.accepts):
            raise ParameterError(
                f"parameter '{self.name}' must be of type {' or '.join(sorted(self.accepts))}, got {kind} {value!r}"
            )
        if kind == "array" and self.item_type is not None:
            for item in value:
                item_kind = _json_kind(item)
                if item_kind != self.item_type and not (item_kind == "integer" and self.item_type == "number"):
                    raise ParameterError(f"parameter '{self.name}' must hold {self.item_type} items, got {item!r}")
        if self.options is not None and value not in self.options:
            raise ParameterError(
                f"parameter '{self.name}' must be one of {', '.join(map(str, self.options))}; got {value!r}"
            )
        return list(value) if kind == "array" else value


@dataclass(frozen=True)
class Architecture:
    offering: Offering
    model_class: type
    description: str
    parameters: dict[str, ParameterSpec]  # anomalib's own defaults
    downloads: tuple[str, ...] = ()  # what the model fetches from the internet at fit time
    fixed_epochs: int | None = None  # the model fits in this many epochs whatever is asked
    fixed: dict[str, Any] = field(default_factory=dict)  # FIXED_PARAMS this model takes

    @property
    def name(self) -> str:
        return self.offering.name

    @property
    def backbone_spec(self) -> ParameterSpec | None:
        return self.parameters.get("backbone")

    @property
    def layer_param(self) -> str | None:
        """``layers`` (list) or ``layer`` (one name): feature maps taken from the backbone."""
        if self.backbone_spec is None:
            return None
        return next((name for name in ("layers", "layer") if name in self.parameters), None)


# ---------------------------------------------------------------------------------------------
# Introspection


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


@dataclass
class _TypeInfo:
    accepts: set[str] = field(default_factory=set)
    options: list[Any] | None = None
    nullable: bool = False
    path: bool = False
    item_type: str | None = None
    enum_type: type[enum.Enum] | None = None
    as_tuple: bool = False


_SCALARS = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _type_info(annotation: Any, info: _TypeInfo | None = None) -> _TypeInfo:
    """JSON view of a type hint: which JSON kinds fit, finite choices, whether it is a path."""
    info = info or _TypeInfo()
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for member in typing.get_args(annotation):
            _type_info(member, info)
    elif annotation is type(None) or annotation is None:
        info.nullable = True
    elif origin is typing.Literal:
        values = list(typing.get_args(annotation))
        info.options = (info.options or []) + values
        info.accepts.update(_json_kind(value) for value in values)
    elif isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        info.enum_type = annotation
        info.options = (info.options or []) + [member.value for member in annotation]
        info.accepts.add("string")
    elif annotation in _SCALARS:
        info.accepts.add(_SCALARS[annotation])
    elif isinstance(annotation, type) and issubclass(annotation, PurePath):
        info.path = True
    elif origin in (list, tuple, Sequence) or annotation in (list, tuple):
        info.accepts.add("array")
        info.as_tuple = info.as_tuple or origin is tuple or annotation is tuple
        items = {arg for arg in typing.get_args(annotation) if arg is not Ellipsis}
        if len(items) == 1 and next(iter(items)) in _SCALARS:
            info.item_type = _SCALARS[next(iter(items))]
    elif origin in (dict, Mapping) or annotation is dict:
        info.accepts.add("object")
    return info


def _to_json(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_to_json(item) for item in value]
    if isinstance(value, PurePath):
        return str(value)
    return value


_ARG_LINE = re.compile(r"^(\s*)(\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")


def _docstring_args(cls: type) -> dict[str, str]:
    """Parameter help from a Google-style ``Args:`` section, without the ``Defaults to`` tail."""
    doc = inspect.getdoc(cls) or ""
    found: dict[str, list[str]] = {}
    in_args, indent, current = False, None, None
    for line in doc.splitlines():
        if line.strip() in {"Args:", "Arguments:", "Parameters:"}:
            in_args, indent, current = True, None, None
            continue
        if not in_args:
            continue
        if line and not line[0].isspace():  # next section
            in_args = False
            continue
        match = _ARG_LINE.match(line)
        if match and (indent is None or len(match.group(1)) == indent):
            indent = len(match.group(1))
            current = match.group(2)
            found[current] = [match.group(4)]
        elif current and line.strip():
            found[current].append(line.strip())
    cleaned = {}
    for name, parts in found.items():
        text = re.sub(r":\w+:`~?([^`]+)`", r"\1", " ".join(parts)).replace("``", "")
        text = re.sub(r"\s*Defaults? to .*$", "", text).strip()
        if text:
            cleaned[name] = text
    return cleaned


def _description(cls: type) -> str:
    """First line of the model package's docstring (names the paper), else of the class docstring."""
    package = importlib.import_module(cls.__module__.rsplit(".", 1)[0])
    for doc in (package.__doc__, cls.__doc__):
        if doc and doc.strip():
            return doc.strip().splitlines()[0].strip()
    return cls.__name__


class _AnyAttribute:
    """Stands in for ``self`` when reading a model's ``trainer_arguments`` without building it."""

    def __getattr__(self, _name: str) -> None:
        return None


def _fixed_epochs(cls: type) -> int | None:
    prop = getattr(cls, "trainer_arguments", None)
    if not isinstance(prop, property):
        return None
    try:
        arguments = prop.fget(_AnyAttribute())
    except Exception:  # noqa: BLE001 - a property that needs a real instance fixes nothing we can see
        return None
    return arguments.get("max_epochs") if isinstance(arguments, dict) else None


def _introspect(offering: Offering) -> Architecture:
    import anomalib.models

    cls = getattr(anomalib.models, offering.class_name)
    helps = _docstring_args(cls)
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # noqa: BLE001 - fall back to the raw annotations
        hints = {}
    parameters: dict[str, ParameterSpec] = {}
    downloads: list[str] = []
    fixed: dict[str, Any] = {}
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name in _OBJECT_PARAMS or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if name in FIXED_PARAMS:
            fixed[name] = FIXED_PARAMS[name]
            continue
        info = _type_info(hints.get(name, param.annotation))
        default = None if param.default is inspect.Parameter.empty else param.default
        if info.path:
            # A folder on the worker that the model fills by downloading a dataset when it is missing.
            if default is not None:
                downloads.append(f"the {Path(str(default)).name} dataset ({name})")
            continue
        if not info.accepts:
            continue
        json_default = _to_json(default)
        kind = _json_kind(json_default)
        primary = kind if kind in info.accepts else sorted(info.accepts)[0]
        parameters[name] = ParameterSpec(
            name=name,
            type=primary,
            default=json_default,
            description=helps.get(name),
            options=tuple(info.options) if info.options else None,
            nullable=info.nullable or default is None,
            accepts=frozenset(info.accepts),
            item_type=info.item_type,
            enum_type=info.enum_type,
            as_tuple=info.as_tuple,
        )
    if "backbone" in parameters:
        # Finite in practice: the timm names the model's code accepts (see Offering.backbones).
        spec = parameters["backbone"]
        options = tuple(dict.fromkeys((spec.default, *(offering.backbones or GENERIC_BACKBONES))))
        parameters["backbone"] = replace(spec, options=options, accepts=frozenset({"string"}), nullable=False)
    fixed_epochs = _fixed_epochs(cls)
    parameters[MAX_EPOCHS] = ParameterSpec(
        name=MAX_EPOCHS,
        type="integer",
        default=fixed_epochs or DEFAULT_MAX_EPOCHS,
        description=(
            f"Fits in {fixed_epochs} pass(es) over the training images; other values are ignored."
            if fixed_epochs
            else "Number of training epochs."
        ),
        accepts=frozenset({"integer"}),
    )
    return Architecture(
        offering=offering,
        model_class=cls,
        description=_description(cls),
        parameters=parameters,
        downloads=tuple(downloads),
        fixed_epochs=fixed_epochs,
        fixed=fixed,
    )


@lru_cache(maxsize=1)
def _architectures() -> dict[str, Architecture]:
    return {offering.name: _introspect(offering) for offering in OFFERINGS}


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def get_architecture(name: str) -> Architecture:
    """Look an architecture up by API name (``efficientad``) or anomalib's (``efficient_ad``, ``EfficientAd``)."""
    if not isinstance(name, str):
        raise ParameterError("architecture must be a string")
    architectures = _architectures()
    wanted = _normalise(name)
    for architecture in architectures.values():
        if wanted in {_normalise(architecture.name), _normalise(architecture.offering.class_name)}:
            return architecture
    raise ParameterError(f"unknown architecture '{name}'; available: {', '.join(architectures)}")


def architecture_names() -> list[str]:
    return [offering.name for offering in OFFERINGS]


# ---------------------------------------------------------------------------------------------
# Backbones and layers


def _weights_ready(backbone: str, cache_dir: Path | None) -> bool:
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
    if _weights_ready(spec.default, cache_dir):
        return spec.default
    ready = [name for name in spec.options or () if _weights_ready(name, cache_dir)]
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


# ---------------------------------------------------------------------------------------------
# Validation


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
            resolved[param] = _resolve_layers(arch, param, backbone, given.get(param))
        if arch.name == "padim":
            resolved["n_features"] = _padim_features(backbone, resolved["layers"], given.get("n_features"))

    epochs = resolved[MAX_EPOCHS]
    if epochs < 1:
        raise ParameterError(f"parameter '{MAX_EPOCHS}' must be at least 1, got {epochs}")
    if arch.fixed_epochs:
        resolved[MAX_EPOCHS] = arch.fixed_epochs
    return resolved


def _resolve_layers(arch: Architecture, param: str, backbone: str, given: Any) -> Any:
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


def _padim_features(backbone: str, layers: list[str], given: int | None) -> int:
    channels = {layer.name: layer.channels for layer in backbones.feature_layers(backbone)}
    total = sum(channels[name] for name in layers)
    if given is not None:
        if not 0 < given <= total:
            raise ParameterError(f"parameter 'n_features' must be between 1 and {total} for these layers, got {given}")
        return given
    defaults = getattr(importlib.import_module("anomalib.models.image.padim.torch_model"), "_N_FEATURES_DEFAULTS", {})
    return min(defaults[backbone], total) if backbone in defaults else total


def model_kwargs(architecture: str, resolved: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for the anomalib model class (enums and tuples restored, platform fixes added)."""
    arch = get_architecture(architecture)
    kwargs: dict[str, Any] = dict(arch.fixed)
    for name, value in resolved.items():
        if name == MAX_EPOCHS:
            continue
        spec = arch.parameters[name]
        if value is not None and spec.enum_type is not None and isinstance(value, str):
            value = spec.enum_type(value)
        elif isinstance(value, list) and spec.as_tuple:
            value = tuple(value)
        kwargs[name] = value
    return kwargs


# ---------------------------------------------------------------------------------------------
# What the API shows


def availability(arch: Architecture, cache_dir: Path | None) -> tuple[bool, str | None]:
    """Whether the architecture can train here, and why not."""
    online = backbones.hub_reachable()
    reasons: list[str] = []
    if arch.downloads and not online:
        reasons.append(f"it downloads {', '.join(arch.downloads)} at fit time and there is no internet access here")
    spec = arch.backbone_spec
    if spec is not None and not any(_weights_ready(name, cache_dir) for name in spec.options or ()):
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
        "available": available,
        "unavailable_reason": reason,
        "parameters": parameters,
    }


def catalog(cache_dir: Path | None = None) -> list[dict[str, Any]]:
    """Every offered architecture, described for this machine."""
    return [describe(arch, cache_dir) for arch in _architectures().values()]
