"""A project's media as an MVTec AD zip, streamed: one image in memory at a time, no temporary file.

The layout is the one :mod:`infra.datasets.layout` imports, so an export imports back into an equal
project (same images, labels, splits, masks and defect types)::

    train/good/<name>                     normal images of the train split
    test/good/<name>                      normal images of the eval split
    test/<defect type>/<name>             anomalous images (test/anomalous/ when they have no defect type)
    ground_truth/<defect type>/<stem>_mask.png

Unlabelled images (collected frames nobody has judged) have no place in the layout and are left out.
Names are the media filenames made safe for every file system and unique per folder (case-insensitively,
by stem, since masks pair by stem). Members are stored, not deflated: images are compressed already.
"""

from __future__ import annotations

import io
import re
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

from infra.datasets.defects import GOOD, UNTYPED
from infra.datasets.layout import MASK_SUFFIX
from infra.splits import ANOMALOUS, NORMAL, TRAIN

MVTEC = "mvtec"
FORMATS = (MVTEC,)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ExportItem:
    filename: str
    label: str
    split: str
    sha256: str
    mask_sha256: str | None = None
    defect_type: str | None = None


@dataclass(frozen=True)
class Member:
    """One file of the archive: its name and the blob whose bytes it holds."""

    name: str
    sha256: str


def mvtec_members(items: Iterable[ExportItem]) -> list[Member]:
    """The archive's files, images and masks, in the items' order (unlabelled items left out)."""
    taken: dict[str, set[str]] = {}
    members: list[Member] = []
    for item in items:
        if item.label == NORMAL:
            folder = f"{'train' if item.split == TRAIN else 'test'}/{GOOD}"
        elif item.label == ANOMALOUS:
            folder = f"test/{item.defect_type or UNTYPED}"
        else:
            continue
        stem, suffix = _unique(folder, item.filename, taken)
        members.append(Member(f"{folder}/{stem}{suffix}", item.sha256))
        if item.label == ANOMALOUS and item.mask_sha256:
            members.append(Member(f"ground_truth/{item.defect_type or UNTYPED}/{stem}{MASK_SUFFIX}.png",
                                  item.mask_sha256))
    return members


def _unique(folder: str, filename: str, taken: dict[str, set[str]]) -> tuple[str, str]:
    """(stem, suffix) for ``filename`` in ``folder``: safe characters, not starting with a dot, unused there."""
    path = PurePosixPath(_UNSAFE.sub("_", filename).lstrip("._-") or "image")
    stem, suffix = path.stem or "image", path.suffix
    used = taken.setdefault(folder, set())
    candidate, number = stem, 1
    while candidate.casefold() in used:
        number += 1
        candidate = f"{stem}-{number}"
    used.add(candidate.casefold())
    return candidate, suffix


class _Chunks(io.RawIOBase):
    """A write-only, unseekable sink: zipfile then writes streaming entries; ``drain`` hands over the bytes."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._parts.append(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def drain(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


def stream_zip(members: Iterable[Member], fetch: Callable[[str], bytes | None]) -> Iterator[bytes]:
    """The zip archive of ``members`` in chunks (about one member each); ``fetch`` returns a blob's bytes,
    or None for a blob that is gone (its media deleted meanwhile): that member is left out."""
    sink = _Chunks()
    stamp = time.localtime()[:6]
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:
        for member in members:
            data = fetch(member.sha256)
            if data is None:
                continue
            archive.writestr(zipfile.ZipInfo(member.name, date_time=stamp), data)
            yield sink.drain()
    yield sink.drain()
