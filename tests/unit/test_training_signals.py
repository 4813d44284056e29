"""Lightning and Prefect's SIGTERM handler: why flows/training/signals.py exists, and that it works.

A one-layer LightningModule on 8 random rows keeps this to a second; the handler is Prefect's own
(``capture_sigterm``), and the check is Prefect's (``is_prefect_sigterm_handler_installed``), the one
its engine makes before it acknowledges a cancel.
"""

from __future__ import annotations

import os
import signal

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from prefect.exceptions import TerminationSignal
from prefect.utilities.engine import capture_sigterm, is_prefect_sigterm_handler_installed
from torch.utils.data import DataLoader, TensorDataset

from flows.training.signals import KeepSigtermHandler


class _Tiny(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.layer(batch[0]).pow(2).mean()

    def test_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self.layer(batch[0])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


class _Probe(Callback):
    """Records, at every training and test batch, whether Prefect's handler is the installed one."""

    def __init__(self, send_sigterm: bool = False) -> None:
        self.installed: list[bool] = []
        self.send_sigterm = send_sigterm

    def on_train_batch_start(self, trainer: Trainer, *args: object) -> None:
        self.installed.append(is_prefect_sigterm_handler_installed())
        if self.send_sigterm:
            os.kill(os.getpid(), signal.SIGTERM)

    def on_test_batch_start(self, trainer: Trainer, *args: object) -> None:
        self.installed.append(is_prefect_sigterm_handler_installed())


def _fit_and_test(*callbacks: Callback) -> None:
    loader = DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=4)
    trainer = Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, callbacks=list(callbacks))
    model = _Tiny()
    trainer.fit(model, loader)
    trainer.test(model, loader, verbose=False)


def test_lightning_takes_sigterm_over_without_the_callback() -> None:
    """If this fails, Lightning no longer replaces the handler and KeepSigtermHandler can go."""
    probe = _Probe()
    with capture_sigterm():
        _fit_and_test(probe)
        assert is_prefect_sigterm_handler_installed()  # Lightning restores it after each stage
    assert probe.installed and not any(probe.installed), probe.installed


def test_prefects_handler_stays_installed_through_fit_and_test() -> None:
    probe = _Probe()
    with capture_sigterm():
        _fit_and_test(KeepSigtermHandler(), probe)
        assert is_prefect_sigterm_handler_installed()
    assert probe.installed == [True] * 4  # 2 training batches, 2 test batches


def test_a_sigterm_during_a_fit_reaches_prefect() -> None:
    with capture_sigterm(), pytest.raises(TerminationSignal):
        _fit_and_test(KeepSigtermHandler(), _Probe(send_sigterm=True))
