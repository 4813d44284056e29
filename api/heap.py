"""The API process's heap: start-up's objects kept out of the garbage collector's way, and large
buffers given back to the system when they are freed.

A full pass of the cyclic collector walks every tracked object: about 0.2 s for the modules an
API process imports, paid by whichever request's allocations trigger it. That pause was the p99
of the list endpoints with 8 clients (benchmarks/api_scale.py). Frozen objects are skipped by
every pass; objects made later are collected as before. `serve` loads anomalib's catalog before
the app starts, so its modules are frozen with the rest.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import platform

log = logging.getLogger(__name__)

# glibc's mallopt parameter, and the size from which an allocation gets its own mapping.
M_MMAP_THRESHOLD = -3
LARGE_BUFFER_BYTES = 1024 * 1024

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


def return_large_buffers() -> bool:
    """Have glibc serve allocations over 1 MiB with their own mappings, unmapped when freed.

    A decoded upload is up to 160 MB (INSPECT_MAX_IMAGE_PIXELS x 4 bytes) in Pillow's 16 MiB blocks.
    By default glibc raises its mmap threshold after the first such block is freed and serves the
    next ones from per-thread arenas, which keep the freed memory: with uploads decoded on many
    threads (two at a time) the API's RSS grew by about a decoded image per thread (+1.15 GiB against
    +0.28 GiB with the threshold fixed, tests/integration/test_upload_memory.py). Fixing the threshold
    also turns off that adjustment. Skipped when the operator set MALLOC_MMAP_THRESHOLD_ or the C
    library is not glibc; returns whether it applied.
    """
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or platform.libc_ver()[0] != "glibc":
        return False
    try:
        applied = bool(ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, LARGE_BUFFER_BYTES))
    except (OSError, AttributeError):
        applied = False
    if not applied:
        log.warning("could not set glibc's mmap threshold: decoded uploads may stay resident after use")
    return applied
