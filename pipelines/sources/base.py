"""What every frame source offers the runtime: open, read one frame, close, check, status.

File sources (video file, images folder) hand out every frame in order and let the runtime
pace them; live sources (webcam, IP camera) keep only the newest frame so a slow pipeline
never works through a backlog of stale ones.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import numpy as np


class SourceError(RuntimeError):
    """The source cannot deliver frames (missing file or device, unreachable URL, gave up reconnecting)."""


class SourceEnded(Exception):  # noqa: N818 - an end-of-stream signal, not an error
    """A finite source (video without loop, images folder without loop/watch) has no more frames."""


@dataclass(frozen=True)
class SourceFrame:
    image: np.ndarray  # BGR uint8
    timestamp: datetime  # wall clock when the frame was read, UTC
    monotonic: float  # time.monotonic() at the same moment, for latency measurements

    @classmethod
    def now(cls, image: np.ndarray) -> SourceFrame:
        return cls(image, datetime.now(UTC), time.monotonic())


@dataclass(frozen=True)
class SourceCheck:
    """The answer to "can this source deliver frames right now?" (``POST /sources/{id}/check``)."""

    reachable: bool
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Source(ABC):
    """A frame source. ``read`` is called from one thread; ``status`` from any."""

    live: ClassVar[bool] = False
    # How long check() waits for the first frame after opening.
    check_timeout_s: ClassVar[float] = 5.0

    @abstractmethod
    def open(self) -> None:
        """Connect or open; raises SourceError with a reason a user can act on."""

    @abstractmethod
    def read(self, timeout: float) -> SourceFrame | None:
        """The next frame; None when none arrived within ``timeout``; SourceEnded at the end; SourceError if lost."""

    @abstractmethod
    def close(self) -> None:
        """Release the file/device/connection; safe to call twice."""

    def nominal_fps(self) -> float | None:
        """The frame rate the source itself reports, if it reports one."""
        return None

    def status(self) -> dict[str, Any]:
        """State for metrics: at least ``state`` and ``error``."""
        return {"state": "open", "error": None}

    def check(self) -> SourceCheck:
        """Open, wait for one frame, close: reports size and fps, or the error."""
        try:
            self.open()
            deadline = time.monotonic() + self.check_timeout_s
            frame = None
            while frame is None and time.monotonic() < deadline:
                frame = self.read(timeout=max(0.05, deadline - time.monotonic()))
            if frame is None:
                return SourceCheck(reachable=False, error=f"no frame within {self.check_timeout_s:g} s")
            height, width = frame.image.shape[:2]
            return SourceCheck(reachable=True, width=width, height=height, fps=self.nominal_fps())
        except SourceEnded:
            return SourceCheck(reachable=False, error="the source has no frames")
        except SourceError as error:
            return SourceCheck(reachable=False, error=str(error))
        finally:
            self.close()
