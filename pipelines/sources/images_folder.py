"""A folder of images read in name order; files that appear later are picked up on the next scan.

At the end of the files: ``watch`` keeps polling for new ones (and never starts over), else
``loop`` starts over with everything that is there now, else the source ends. Files are only
read once they have not changed for ``settle_s``, so a half-copied image is not read early.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections import deque
from pathlib import Path
from typing import Any

import cv2

from infra.configs.sources import ImagesFolderConfig
from pipelines.sources.base import Source, SourceEnded, SourceError, SourceFrame

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})


class ImagesFolderSource(Source):
    # Rescan at most this often while files are pending, so new files join the queue promptly.
    scan_interval_s = 0.5
    # A file modified more recently than this may still be being written: leave it for the next scan.
    settle_s = 0.2

    def __init__(self, config: ImagesFolderConfig) -> None:
        self.config = config
        self.path = Path(config.path).expanduser()
        self._pending: deque[Path] = deque()
        self._seen: set[Path] = set()
        self._last_scan = 0.0
        self._state = "closed"
        self._skipped = 0
        self._cycles = 0

    def open(self) -> None:
        if not self.path.is_dir():
            raise SourceError(f"images folder not found: {self.path}")
        self._pending.clear()
        self._seen.clear()
        if self._scan() and not self._pending:
            time.sleep(self.settle_s)  # files are there but were written a moment ago
            self._scan()
        if not self._pending and not self.config.watch:
            raise SourceError(f"no images matching {self.config.pattern!r} in {self.path}")
        self._state = "reading"

    def _scan(self) -> int:
        """Queue settled new files in name order; returns how many were left for later (still settling)."""
        self._last_scan = time.monotonic()
        walker = self.path.rglob("*") if self.config.recursive else self.path.iterdir()
        cutoff = time.time() - self.settle_s
        fresh = []
        unsettled = 0
        for path in walker:
            if path in self._seen or path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if not fnmatch.fnmatch(path.name, self.config.pattern):
                continue
            try:
                if not path.is_file():
                    continue
                if path.stat().st_mtime > cutoff:
                    unsettled += 1
                    continue
            except OSError:  # removed between listing and stat
                continue
            fresh.append(path)
        fresh.sort()
        self._seen.update(fresh)
        self._pending.extend(fresh)
        return unsettled

    def read(self, timeout: float) -> SourceFrame | None:
        deadline = time.monotonic() + timeout
        while True:
            if not self._pending or time.monotonic() - self._last_scan >= self.scan_interval_s:
                self._scan()
            if not self._pending and not self.config.watch and self.config.loop and self._seen:
                self._seen.clear()  # start the next cycle over everything that is there now
                self._cycles += 1
                self._scan()
            if self._pending:
                path = self._pending.popleft()
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if image is not None:
                    return SourceFrame.now(image)
                self._skipped += 1
                log.warning("skipping %s: not a readable image", path)
                continue
            if not self.config.watch and not self.config.loop:
                self._state = "ended"
                raise SourceEnded
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            time.sleep(min(self.scan_interval_s, remaining))

    def close(self) -> None:
        self._pending.clear()
        if self._state != "ended":
            self._state = "closed"

    def status(self) -> dict[str, Any]:
        return {
            "state": self._state,
            "error": None,
            "pending": len(self._pending),
            "skipped": self._skipped,
            "cycles": self._cycles,
        }
