"""Training data on disk: a snapshot written as folders, then anomalib's Folder datamodule over them.

Layout written by :func:`materialise` (and read by :func:`build_datamodule`)::

    root/normal/<name>       good images: the training set, minus a held-out share for evaluation
    root/anomalous/<name>    defective images: evaluation only
    root/masks/<stem>.png    optional defect masks, one per anomalous image (enables pixel metrics)

It knows nothing about the database or the object store: the flow passes items and a function
that returns the bytes behind an item's reference.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from anomalib.data import Folder
from anomalib.data.utils import TestSplitMode, ValSplitMode

NORMAL, ANOMALOUS, MASKS = "normal", "anomalous", "masks"
LABELS = (NORMAL, ANOMALOUS)
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


class DatasetItem(NamedTuple):
    """One image of a snapshot: a filename-safe unique ``name``, its label, where its bytes are."""

    name: str
    label: str  # "normal" | "anomalous"
    ref: str  # passed to fetch_bytes (e.g. a blob sha256)
    mask_ref: str | None = None  # optional defect mask (any single-channel image), anomalous only


@dataclass(frozen=True)
class DatasetLayout:
    root: Path
    normal: int
    anomalous: int
    masks: int

    @property
    def has_masks(self) -> bool:
        """Pixel metrics need a mask for every anomalous image (anomalib pairs them by name)."""
        return self.anomalous > 0 and self.masks == self.anomalous


class DatasetError(ValueError):
    """The snapshot cannot be turned into a training set."""


def materialise(items: Iterable[DatasetItem | tuple], fetch_bytes: Callable[[str], bytes], root: Path) -> DatasetLayout:
    """Write every item's bytes under ``root`` in the folder layout above; returns the counts."""
    root = Path(root)
    counts = {NORMAL: 0, ANOMALOUS: 0, MASKS: 0}
    seen: set[str] = set()
    for raw in items:
        item = DatasetItem(*raw)
        if not _SAFE_NAME.fullmatch(item.name) or ".." in item.name:
            raise DatasetError(f"unsafe file name {item.name!r}")
        if item.label not in LABELS:
            raise DatasetError(f"unknown label {item.label!r} for {item.name} (expected one of {LABELS})")
        if item.name in seen:
            raise DatasetError(f"duplicate item name {item.name!r}")
        seen.add(item.name)
        _write(root / item.label / item.name, fetch_bytes(item.ref))
        counts[item.label] += 1
        if item.mask_ref is not None and item.label == ANOMALOUS:
            _write(root / MASKS / f"{Path(item.name).stem}.png", _as_png(fetch_bytes(item.mask_ref)))
            counts[MASKS] += 1
    return DatasetLayout(root=root, normal=counts[NORMAL], anomalous=counts[ANOMALOUS], masks=counts[MASKS])


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _as_png(data: bytes) -> bytes:
    """Masks are stored as PNG whatever they came as: anomalib pairs them by stem, not extension."""
    import io

    from PIL import Image

    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return data
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("L").save(buffer, format="PNG")
    return buffer.getvalue()


def read_layout(root: Path) -> DatasetLayout:
    """Count what a materialised folder holds."""
    root = Path(root)

    def count(sub: str) -> int:
        folder = root / sub
        return sum(1 for path in folder.iterdir() if path.is_file()) if folder.is_dir() else 0

    return DatasetLayout(root=root, normal=count(NORMAL), anomalous=count(ANOMALOUS), masks=count(MASKS))


def build_datamodule(
    root: Path,
    *,
    holdout_ratio: float = 0.25,
    train_batch_size: int = 8,
    eval_batch_size: int = 8,
    num_workers: int = 0,
    seed: int = 42,
    min_normal: int = 2,
) -> Folder:
    """anomalib Folder datamodule: train on normal images, evaluate on held-out normal + anomalous.

    ``holdout_ratio`` of the normal images (seeded random split) is kept out of training. Without
    anomalous images, the held-out normals become a synthetic test set (half of them get generated
    defects), so there is still an AUROC to report. Validation (used by anomalib for the threshold
    and score normalisation) is the test set itself: small projects cannot spare a third split,
    and AUROC does not depend on the threshold. Image size comes from the model's pre-processor.
    """
    layout = read_layout(root)
    if layout.normal < min_normal:
        raise DatasetError(f"need at least {min_normal} normal images to train, got {layout.normal}")
    return Folder(
        name=Path(root).name or "dataset",
        root=Path(root),
        normal_dir=NORMAL,
        abnormal_dir=ANOMALOUS if layout.anomalous else None,
        mask_dir=MASKS if layout.has_masks else None,
        train_batch_size=train_batch_size,
        eval_batch_size=eval_batch_size,
        num_workers=num_workers,
        test_split_mode=TestSplitMode.FROM_DIR if layout.anomalous else TestSplitMode.SYNTHETIC,
        test_split_ratio=holdout_ratio,
        val_split_mode=ValSplitMode.SAME_AS_TEST,
        seed=seed,
    )
