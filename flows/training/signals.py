"""Keep the caller's SIGTERM handler in force while Lightning fits and tests.

Lightning's trainer wraps the current SIGTERM handler in its own for every fit/test (its signal
connector, meant for multi-process launchers and SLURM requeueing, neither used here). Prefect
acknowledges a cancel request only while its own handler is installed; under Lightning's the
worker's SIGTERM is recorded as a crash, and a cancelled job would end "failed".

:class:`KeepSigtermHandler` is an ordinary Lightning callback: the trainer's stages start after
the connector registered its handlers, so each start hook puts the caller's handler back, and the
connector's teardown restores it anyway. ``tests/unit/test_training_signals.py`` fails when
Lightning stops taking SIGTERM over (the callback can go) or takes it over later than these hooks.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from lightning.pytorch import Callback, Trainer


class KeepSigtermHandler(Callback):
    """Reinstalls the SIGTERM handler that was in place when the callback was made (main thread only)."""

    def __init__(self) -> None:
        self.handler = signal.getsignal(signal.SIGTERM) if _main_thread() else None

    def _reinstall(self) -> None:
        if self.handler is not None and _main_thread():
            signal.signal(signal.SIGTERM, self.handler)

    def on_train_start(self, trainer: Trainer, pl_module: Any) -> None:
        self._reinstall()

    def on_validation_start(self, trainer: Trainer, pl_module: Any) -> None:
        self._reinstall()

    def on_test_start(self, trainer: Trainer, pl_module: Any) -> None:
        self._reinstall()

    def on_predict_start(self, trainer: Trainer, pl_module: Any) -> None:
        self._reinstall()


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
