"""Dataset folder layouts: which file of an import becomes which media item, and with which mask.

Two layouts, recognised from the file names alone (an archive's member names or a folder's relative
paths), optionally inside one top-level folder (``bottle/train/good/...``)::

    MVTec AD                                   flat
    train/good/<image>        normal, train    normal/<image>     normal, split by the project's rules
    test/good/<image>         normal, eval     anomalous/<image>  anomalous (eval)
    test/<defect>/<image>     anomalous, eval, masks/<stem>.png   the mask of anomalous/<stem>.*
                              defect_type <defect>
    ground_truth/<defect>/<stem>_mask.png      the mask of test/<defect>/<stem>.*

``test/anomalous/`` holds anomalous images without a defect type (:mod:`infra.datasets.defects`), so an
export imports back as it was. Every other file is refused with the reason (a file outside the layout,
a mask without an image, a mask of a normal image, ...); whether a file is an image, and a mask the size of
its image, is only known once it is read (the import flow). macOS metadata (``__MACOSX/``, ``._*``) and
hidden files (``.DS_Store``) are ignored.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath

from infra.datasets.defects import GOOD, UNTYPED, DefectTypeError, check_defect_type
from infra.splits import ANOMALOUS, EVAL, NORMAL, TRAIN, Split

MVTEC, FLAT = "mvtec", "flat"
LAYOUTS = (MVTEC, FLAT)
_MARKERS = {MVTEC: ("train", "test"), FLAT: ("normal", "anomalous")}
MASK_SUFFIX = "_mask"


class LayoutError(ValueError):
    """The names fit neither layout: the import is refused as a whole (the message says why)."""


@dataclass(frozen=True)
class ImageEntry:
    """One image to import: where it is, what it becomes, and where its mask is (if any)."""

    path: str  # the name as given (archive member or relative path)
    label: str  # normal | anomalous
    split: Split | None  # decided by the layout (MVTec), or None: the project's split rules
    defect_type: str | None = None
    mask_path: str | None = None


@dataclass(frozen=True)
class Refusal:
    file: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"file": self.file, "reason": self.reason}


@dataclass
class ImportPlan:
    layout: str
    images: list[ImageEntry] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    ignored: int = 0  # operating-system metadata files


def ignorable(name: str) -> bool:
    """macOS resource forks and hidden files: never part of a dataset, never worth a refusal."""
    parts = PurePosixPath(name).parts
    return bool(parts) and (parts[0] == "__MACOSX" or any(part.startswith(".") for part in parts))


def detect_layout(names: Iterable[str]) -> tuple[str, str]:
    """(layout, root prefix) of the names: at the top, or inside one common top-level folder; else LayoutError."""
    relevant = [name for name in names if not ignorable(name)]
    if not relevant:
        raise LayoutError("the dataset holds no files")
    candidates = [""]
    tops = {PurePosixPath(name).parts[0] for name in relevant}
    if len(tops) == 1 and all(len(PurePosixPath(name).parts) > 1 for name in relevant):
        candidates.append(f"{tops.pop()}/")
    for root in candidates:
        firsts = {PurePosixPath(name[len(root):]).parts[0] for name in relevant if name.startswith(root)
                  and len(PurePosixPath(name[len(root):]).parts) > 1}
        found = [layout for layout, markers in _MARKERS.items() if firsts & set(markers)]
        if len(found) > 1:
            raise LayoutError("the dataset mixes the MVTec folders (train/, test/) with the flat ones "
                              "(normal/, anomalous/): use one layout")
        if found:
            return found[0], root
    raise LayoutError("unknown dataset layout: expected MVTec AD (train/good/, test/good/, test/<defect>/, "
                      "ground_truth/<defect>/<name>_mask.png) or flat (normal/, anomalous/, masks/), "
                      "at the top or inside one folder")


def plan_import(names: Iterable[str]) -> ImportPlan:
    """Every file name sorted into images (with their masks) and refusals; LayoutError when no layout fits."""
    names = sorted(set(names))
    layout, root = detect_layout(names)
    plan = ImportPlan(layout=layout)
    images: list[ImageEntry] = []
    by_stem: dict[tuple[str, str], list[int]] = defaultdict(list)  # (mask folder, image stem) -> image indexes
    masks: dict[tuple[str, str], list[str]] = defaultdict(list)  # (mask folder, image stem) -> mask names
    for name in names:
        if ignorable(name):
            plan.ignored += 1
            continue
        parts = PurePosixPath(name[len(root):]).parts if name.startswith(root) else ()
        placed = (_place_mvtec if layout == MVTEC else _place_flat)(name, parts)
        if isinstance(placed, Refusal):
            plan.refused.append(placed)
        elif isinstance(placed, ImageEntry):
            by_stem[(_mask_key(layout, parts), PurePosixPath(name).stem)].append(len(images))
            images.append(placed)
        else:
            masks[placed].append(name)
    for key, mask_names in masks.items():
        targets = by_stem.get(key, [])
        reason = _mask_problem(mask_names, [images[index] for index in targets])
        if reason is not None:
            plan.refused.extend(Refusal(mask, reason) for mask in mask_names)
        else:
            images[targets[0]] = replace(images[targets[0]], mask_path=mask_names[0])
    plan.images = images
    return plan


def _mask_problem(mask_names: list[str], targets: list[ImageEntry]) -> str | None:
    if len(mask_names) > 1:
        return "more than one mask for the same image"
    if not targets:
        return "a mask without an image"
    if len(targets) > 1:
        return "the mask matches more than one image (same name, different extensions)"
    if targets[0].label != ANOMALOUS:
        return "a normal image has no defect mask"
    return None


def _mask_key(layout: str, parts: tuple[str, ...]) -> str:
    """The folder whose masks pair with an image in ``parts`` (MVTec: the defect; flat: all of masks/)."""
    return parts[1] if layout == MVTEC else ""


def _outside(name: str, where: str) -> Refusal:
    return Refusal(name, f"outside the dataset layout ({where})")


def _defect(name: str, folder: str) -> str | Refusal | None:
    if folder == UNTYPED:
        return None
    try:
        return check_defect_type(folder)
    except DefectTypeError as error:
        return Refusal(name, str(error))


def _place_mvtec(name: str, parts: tuple[str, ...]) -> ImageEntry | Refusal | tuple[str, str]:
    """An image entry, a mask's pairing key (defect folder, image stem), or a refusal."""
    if len(parts) != 3:
        return _outside(name, "MVTec: train/good/, test/<defect>/ and ground_truth/<defect>/ hold files")
    top, folder, filename = parts
    if top == "train":
        if folder != GOOD:
            return _outside(name, "MVTec: train/ holds good/ only")
        return ImageEntry(name, NORMAL, TRAIN)
    if top == "test":
        if folder == GOOD:
            return ImageEntry(name, NORMAL, EVAL)
        defect = _defect(name, folder)
        if isinstance(defect, Refusal):
            return defect
        return ImageEntry(name, ANOMALOUS, EVAL, defect)
    if top == "ground_truth":
        stem = PurePosixPath(filename).stem
        if folder == GOOD:
            return Refusal(name, "a normal image has no defect mask")
        if not stem.endswith(MASK_SUFFIX) or stem == MASK_SUFFIX:
            return Refusal(name, f"MVTec masks are named <image name>{MASK_SUFFIX}.png")
        return (folder, stem[: -len(MASK_SUFFIX)])
    return _outside(name, "MVTec: train/, test/, ground_truth/")


def _place_flat(name: str, parts: tuple[str, ...]) -> ImageEntry | Refusal | tuple[str, str]:
    if len(parts) != 2:
        return _outside(name, "flat: normal/, anomalous/ and masks/ hold files, no subfolders")
    top, filename = parts
    if top == "normal":
        return ImageEntry(name, NORMAL, None)
    if top == "anomalous":
        return ImageEntry(name, ANOMALOUS, EVAL)
    if top == "masks":
        return ("", PurePosixPath(filename).stem)
    return _outside(name, "flat: normal/, anomalous/, masks/")
