"""Content-addressed blobs: the key of a blob is its sha256.

Writing and deleting them goes through ``infra/blob_gc.py``, which orders writers and the collector.
"""

from __future__ import annotations


def blob_key(sha256: str) -> str:
    return f"blobs/{sha256[:2]}/{sha256}"
