"""Pick the configured storage backend."""

from __future__ import annotations

from infra.settings import Settings
from infra.storage.base import ObjectStore


def build_store(settings: Settings) -> ObjectStore:
    if settings.storage_backend == "s3":
        from infra.storage.s3 import S3Store

        return S3Store(settings.s3_bucket, settings.s3_prefix, settings.s3_endpoint_url, settings.s3_region)
    from infra.storage.local import LocalStore

    return LocalStore(settings.resolved_data_dir / "storage")
