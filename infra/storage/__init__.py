"""Object storage: one interface, a local-folder backend and an S3 backend."""

from infra.storage.base import ObjectStore, StorageKeyError
from infra.storage.blobs import blob_key
from infra.storage.factory import build_store

__all__ = ["ObjectStore", "StorageKeyError", "blob_key", "build_store"]
