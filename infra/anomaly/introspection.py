"""Architectures read from anomalib's model classes: parameters, types, defaults, choices, help.

Descriptions, parameter names, types, defaults, choices and help texts come from the classes
themselves (signature, type hints, docstring), so a new anomalib release updates the catalog.
Also the way back: :func:`model_kwargs` turns resolved JSON parameters into the class's arguments.
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

from infra.anomaly.offerings import (
    DEFAULT_MAX_EPOCHS,
    FIXED_PARAMS,
    GENERIC_BACKBONES,
    MAX_EPOCHS,
    OFFERINGS,
    Offering,
    ParameterError,
)

# Constructor arguments that take Python objects (processors, evaluators, ...), not JSON values.
_OBJECT_PARAMS = frozenset({"self", "pre_processor", "post_processor", "evaluator", "visualizer"})


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
    minimum: int | None = None  # checked by validation (platform parameters)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "default": self.default}
        if self.options is not None:
            out["options"] = list(self.options)
        if self.minimum is not None:
            out["minimum"] = self.minimum
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
    # Parameters the platform adds (Offering.extra_parameters): validated and resolved, never passed to anomalib.
    platform_parameters: frozenset[str] = frozenset()

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
    for extra in offering.extra_parameters:
        parameters[extra.name] = ParameterSpec(name=extra.name, type=extra.type, default=extra.default,
                                               description=extra.description, nullable=extra.nullable,
                                               accepts=frozenset({extra.type}), minimum=extra.minimum)
    return Architecture(
        offering=offering,
        model_class=cls,
        description=_description(cls),
        parameters=parameters,
        downloads=tuple(downloads),
        fixed_epochs=fixed_epochs,
        fixed=fixed,
        platform_parameters=frozenset(extra.name for extra in offering.extra_parameters),
    )


@lru_cache(maxsize=1)
def architectures() -> dict[str, Architecture]:
    """Every offering read from anomalib once per process (importing anomalib takes seconds)."""
    return {offering.name: _introspect(offering) for offering in OFFERINGS}


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def get_architecture(name: str) -> Architecture:
    """Look an architecture up by API name (``efficientad``) or anomalib's (``efficient_ad``, ``EfficientAd``)."""
    if not isinstance(name, str):
        raise ParameterError("architecture must be a string")
    known = architectures()
    wanted = _normalise(name)
    for architecture in known.values():
        if wanted in {_normalise(architecture.name), _normalise(architecture.offering.class_name)}:
            return architecture
    raise ParameterError(f"unknown architecture '{name}'; available: {', '.join(known)}")


def model_kwargs(architecture: str, resolved: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for the anomalib model class (enums and tuples restored, platform fixes added)."""
    arch = get_architecture(architecture)
    kwargs: dict[str, Any] = dict(arch.fixed)
    for name, value in resolved.items():
        if name == MAX_EPOCHS or name in arch.platform_parameters:
            continue
        spec = arch.parameters[name]
        if value is not None and spec.enum_type is not None and isinstance(value, str):
            value = spec.enum_type(value)
        elif isinstance(value, list) and spec.as_tuple:
            value = tuple(value)
        kwargs[name] = value
    return kwargs
