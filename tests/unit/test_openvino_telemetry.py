"""The platform sends OpenVINO no telemetry: a conversion forks no sender process and writes no consent files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from infra.anomaly.telemetry import decline_openvino_telemetry

FORKS: list[int] = []
_counting = False


def _count_fork() -> None:
    if _counting:
        FORKS.append(os.getpid())


os.register_at_fork(before=_count_fork)  # hooks cannot be removed: this one counts only inside the test


def test_a_conversion_sends_nothing_where_the_user_never_answered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A home with no consent file is where OpenVINO sends by default (one forked process per event)."""
    global _counting
    torch = pytest.importorskip("torch")
    import openvino as ov
    import openvino_telemetry

    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("CI", "TF_BUILD", "JENKINS_URL"):  # OpenVINO declines by itself on CI machines
        monkeypatch.delenv(name, raising=False)
    decline_openvino_telemetry()
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    _counting = True
    try:
        converted = ov.convert_model(module, example_input=torch.zeros(1, 3, 16, 16))
    finally:
        _counting = False
    assert converted.outputs, "the conversion itself still works"
    assert FORKS == [], f"{len(FORKS)} processes forked to send telemetry"
    assert openvino_telemetry.Telemetry().consent is False
    assert not (tmp_path / "intel").exists(), "no client id or consent file written"
