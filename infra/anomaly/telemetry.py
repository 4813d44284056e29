"""OpenVINO's model converter (and NNCF) send usage telemetry to Google Analytics unless the user has opted out.

Their consent check (``openvino_telemetry``) counts a machine that never answered as consenting, and each
event is sent from a process forked off the converting one: a multi-GB training process copied once per
event, trying a host that a factory network cannot reach. The platform sends nothing: the check declines,
for every tool that asks it in this process. OpenVINO documents ``opt_in_out --opt_out`` for the same
decision; that writes into the user's home, which the platform leaves alone.
"""

from __future__ import annotations

import functools


@functools.cache
def decline_openvino_telemetry() -> None:
    """Make OpenVINO's telemetry consent check answer "declined" in this process (idempotent)."""
    try:
        from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker
    except ImportError:  # not installed: the converter uses its no-op stub
        return

    def declined(self: OptInChecker, enable_opt_in_dialog: bool, disable_in_ci: bool = False) -> ConsentCheckResult:
        return ConsentCheckResult.DECLINED

    OptInChecker.check = declined  # type: ignore[method-assign]
