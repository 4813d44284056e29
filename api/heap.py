"""The API process's heap: long-lived objects kept out of the garbage collector's way.

A full pass of the cyclic collector walks every tracked object: about 0.2 s for the modules an
API process imports, paid by whichever request's allocations trigger it. That pause was the p99
of the list endpoints with 8 clients (benchmarks/api_scale.py). Frozen objects are skipped by
every pass; objects made later are collected as before.
"""

from __future__ import annotations

import gc

_startup_frozen = False


def freeze_long_lived_objects() -> None:
    """Freeze what is alive now; call it only when that is what lives as long as the process."""
    gc.collect()
    gc.freeze()


def freeze_startup_heap() -> None:
    """Freeze start-up's modules, app and settings, once per process.

    Once: an app made later in the same process (tests make many) is not frozen, so it can
    still be collected when it is dropped.
    """
    global _startup_frozen
    if not _startup_frozen:
        _startup_frozen = True
        freeze_long_lived_objects()
