"""The API process's heap: start-up's objects kept out of the garbage collector's way.

A full pass of the cyclic collector walks every tracked object: about 0.2 s for the modules an
API process imports, paid by whichever request's allocations trigger it. That pause was the p99
of the list endpoints with 8 clients (benchmarks/api_scale.py). Frozen objects are skipped by
every pass; objects made later are collected as before. `serve` loads anomalib's catalog before
the app starts, so its modules are frozen with the rest.
"""

from __future__ import annotations

import gc

_frozen = False


def freeze_startup_heap() -> None:
    """Freeze what is alive now, once per process.

    Once: an app made later in the same process (tests make many) is not frozen, so it can
    still be collected when it is dropped.
    """
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()
