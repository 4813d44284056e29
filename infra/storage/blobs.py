"""Content-addressed blobs: the key of a blob is its sha256."""

from __future__ import annotations

import hashlib

from infra.storage.base import ObjectStore


def blob_key(sha256: str) -> str:
    return f"blobs/{sha256[:2]}/{sha256}"


def put_blob(store: ObjectStore, data: bytes) -> str:
    """Store bytes once (identical content is shared) and return their hash."""
    digest = hashlib.sha256(data).hexdigest()
    key = blob_key(digest)
    if not store.exists(key):
        store.put(key, data)
    return digest
