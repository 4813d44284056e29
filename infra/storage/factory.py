"""Pick the configured storage backend."""

from __future__ import annotations

from infra.settings import Settings
from infra.storage.base import ObjectStore


def build_store(settings: Settings, create: bool = True) -> ObjectStore:
    """The configured store; ``create=False`` never creates its bucket (a read-only check)."""
    if settings.storage_backend == "s3":
        from infra.storage.s3 import S3Store

        return S3Store(settings.s3_bucket, settings.s3_prefix, settings.s3_endpoint_url, settings.s3_region,
                       create_bucket=create)
    from infra.storage.local import LocalStore

    return LocalStore(settings.resolved_data_dir / "storage")
