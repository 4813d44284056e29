"""Training data on disk: a snapshot written as folders, then anomalib's Folder datamodule over them.

Layout written by :func:`materialise` (and read by :func:`build_datamodule`)::

    root/normal/<name>        good images of the ``train`` split: what the model fits on
    root/normal_eval/<name>   good images of the ``eval`` split: evaluation only
    root/anomalous/<name>     defective images: evaluation only (always the ``eval`` split)
    root/masks/<stem>.png     optional defect masks, one per anomalous image (enables pixel metrics)

``unlabelled`` items (collected frames nobody has judged yet) are never written: they are
neither trained on nor evaluated. It knows nothing about the database or the object store: the
flow passes items and a function that returns the bytes behind an item's reference.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from anomalib.data import Folder
from anomalib.data.utils import TestSplitMode, ValSplitMode

NORMAL, ANOMALOUS, MASKS, NORMAL_EVAL = "normal", "anomalous", "masks", "normal_eval"
UNLABELLED = "unlabelled"
LABELS = (NORMAL, ANOMALOUS)
TRAIN_SPLIT, EVAL_SPLIT = "train", "eval"
# Synthetic anomalies turn half of the eval normals into defects: fewer than two leave none.
MIN_SYNTHETIC_SOURCES = 2
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


class DatasetItem(NamedTuple):
    """One image of a snapshot: a filename-safe unique ``name``, its label, where its bytes are."""

    name: str
    label: str  # "normal" | "anomalous" | "unlabelled" (skipped)
    ref: str  # passed to fetch_bytes (e.g. a blob sha256)
    mask_ref: str | None = None  # optional defect mask (any single-channel image), anomalous only
    split: str = TRAIN_SPLIT  # "train" | "eval"; anomalous images are evaluated whatever it says


@dataclass(frozen=True)
class DatasetLayout:
    root: Path
    normal: int  # train normals
    anomalous: int
    masks: int
    normal_eval: int = 0
    skipped: int = 0  # unlabelled items, not written

    @property
    def has_masks(self) -> bool:
        """Pixel metrics need a mask for every anomalous image (anomalib pairs them by name)."""
        return self.anomalous > 0 and self.masks == self.anomalous


class DatasetError(ValueError):
    """The snapshot cannot be turned into a training set."""


def materialise(items: Iterable[DatasetItem | tuple], fetch_bytes: Callable[[str], bytes], root: Path) -> DatasetLayout:
    """Write every item's bytes under ``root`` in the folder layout above; returns the counts."""
    root = Path(root)
    counts = {NORMAL: 0, NORMAL_EVAL: 0, ANOMALOUS: 0, MASKS: 0, UNLABELLED: 0}
    seen: set[str] = set()
    for raw in items:
        item = DatasetItem(*raw)
        if not _SAFE_NAME.fullmatch(item.name) or ".." in item.name:
            raise DatasetError(f"unsafe file name {item.name!r}")
        if item.label == UNLABELLED:
            counts[UNLABELLED] += 1
            continue
        if item.label not in LABELS:
            raise DatasetError(f"unknown label {item.label!r} for {item.name} (expected one of {LABELS})")
        if item.split not in (TRAIN_SPLIT, EVAL_SPLIT):
            raise DatasetError(f"unknown split {item.split!r} for {item.name}")
        if item.name in seen:
            raise DatasetError(f"duplicate item name {item.name!r}")
        seen.add(item.name)
        folder = NORMAL_EVAL if item.label == NORMAL and item.split == EVAL_SPLIT else item.label
        _write(root / folder / item.name, fetch_bytes(item.ref))
        counts[folder] += 1
        if item.mask_ref is not None and item.label == ANOMALOUS:
            _write(root / MASKS / f"{Path(item.name).stem}.png", _as_png(fetch_bytes(item.mask_ref)))
            counts[MASKS] += 1
    return DatasetLayout(root=root, normal=counts[NORMAL], anomalous=counts[ANOMALOUS], masks=counts[MASKS],
                         normal_eval=counts[NORMAL_EVAL], skipped=counts[UNLABELLED])


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

    return DatasetLayout(root=root, normal=count(NORMAL), anomalous=count(ANOMALOUS), masks=count(MASKS),
                         normal_eval=count(NORMAL_EVAL))


# Decoding an image bigger than this many times the model input costs more than extracting its features.
LARGE_IMAGE_FACTOR = 4
LOADER_WORKERS = 2


def loader_workers(root: Path, image_size: tuple[int, int]) -> int:
    """DataLoader processes for this dataset: large images decode and resize beside the model, small ones inline.

    Reads only the header of the first training image (a project's images usually share a size).
    """
    from PIL import Image

    folder = Path(root) / NORMAL
    first = next((path for path in sorted(folder.iterdir()) if path.is_file()), None) if folder.is_dir() else None
    if first is None:
        return 0
    try:
        with Image.open(first) as image:
            width, height = image.size
    except OSError:
        return 0
    return LOADER_WORKERS if width * height > LARGE_IMAGE_FACTOR * image_size[0] * image_size[1] else 0


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
    """anomalib Folder datamodule: fit on the train normals, evaluate on the eval normals + anomalous.

    The eval split is the snapshot's (``normal_eval/`` and ``anomalous/``), so every model trained
    on a snapshot is scored on the same images. Without anomalous images, the eval normals become
    a synthetic test set (half of them get generated defects), so there is still an AUROC to
    report. A snapshot without eval normals (frozen before splits existed, or a project with
    very few images) falls back to a seeded random hold-out of ``holdout_ratio`` of the train
    normals; so does one with neither anomalous images nor the two eval normals a synthetic set
    needs, its eval normals then joining the normals. Validation (used by anomalib for the
    threshold and score normalisation) is the test set itself: small projects cannot spare a
    third split, and AUROC does not depend on the threshold. Image size comes from the model's
    pre-processor.
    """
    layout = read_layout(root)
    if layout.normal < min_normal:
        raise DatasetError(f"need at least {min_normal} normal images to train, got {layout.normal}")
    normal_dir: str | list[str] = NORMAL
    normal_test_dir = NORMAL_EVAL if layout.normal_eval else None
    if not layout.anomalous and 0 < layout.normal_eval < MIN_SYNTHETIC_SOURCES:
        normal_dir, normal_test_dir = [NORMAL, NORMAL_EVAL], None
    return Folder(
        name=Path(root).name or "dataset",
        root=Path(root),
        normal_dir=normal_dir,
        normal_test_dir=normal_test_dir,
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
