"""Dataset import flow: an MVTec AD or flat dataset (a zip in object storage, or a server folder) into a project.

Two steps, so nothing is half-written and the database is not held while files are read:

1. *read and store files*: every image of the layout (:mod:`infra.datasets.layout`) is read, fully decoded,
   its mask checked against it (:func:`infra.images.normalise_mask`), and stored as a blob with its
   thumbnail; no row yet. Images whose content the project already holds (or that came earlier in the same
   import) count as ``duplicates`` and are not stored again.
2. *add media*: one transaction adds every media row (split by the layout or the project's rules,
   ``infra.media_records.add_media_row``), with its defect type and mask.

A failure or a cancel rolls the rows back and deletes the blobs no row uses, so the project is as it was.
The job's metrics: ``layout``, ``added``, ``masks``, ``duplicates``, ``refused`` (each file with its reason,
the first ``MAX_REFUSALS_LISTED``), ``refused_total`` and ``ignored`` (operating-system metadata files). The
uploaded archive is deleted from storage when the job ends.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from prefect import flow
from sqlalchemy import select

from flows.common import JobProgress, flow_settings, scratch, step
from flows.run_names import import_run_name
from infra.blob_gc import delete_unreferenced_blobs_quietly, thumbnail_key
from infra.configs.confinement import Confinement
from infra.database.engine import session_scope
from infra.database.models import Media, Project
from infra.datasets.layout import ImageEntry, ImportPlan, Refusal, plan_import
from infra.datasets.sources import DatasetSource, FileRefused, FolderSource, ImportLimits, ZipSource
from infra.images import ImageRejected, decode_image, display_filename, normalise_mask
from infra.media_records import ImageFacts, add_media_row
from infra.settings import Settings
from infra.splits import assigner_for
from infra.storage import ObjectStore, build_store, put_blob

log = logging.getLogger(__name__)

MAX_REFUSALS_LISTED = 1000  # the job's metrics stay small; refused_total counts them all
READ_SHARE = 0.9  # of the progress bar: reading, decoding and storing; the rest is adding the rows


class ImportFlowError(RuntimeError):
    pass


@dataclass(frozen=True)
class StoredImage:
    """An image (and mask) whose blobs are stored, waiting for its media row."""

    entry: ImageEntry
    facts: ImageFacts  # thumbnail already stored
    mask_sha256: str | None


@dataclass
class ImportReport:
    layout: str
    stored: list[StoredImage] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    duplicates: int = 0
    ignored: int = 0
    written: set[str] = field(default_factory=set)  # blob hashes this import stored (undone on failure)

    def metrics(self, added: list[StoredImage] | None = None) -> dict[str, Any]:
        rows = self.stored if added is None else added
        return {"layout": self.layout, "added": len(rows), "masks": sum(1 for image in rows if image.mask_sha256),
                "duplicates": self.duplicates, "refused_total": len(self.refused), "ignored": self.ignored,
                "refused": [refusal.to_dict() for refusal in self.refused[:MAX_REFUSALS_LISTED]]}


@contextmanager
def _source(store: ObjectStore, settings: Settings, archive_key: str | None, path: str | None
            ) -> Iterator[DatasetSource]:
    """The import's files: the server folder, or the uploaded zip copied to this worker's temporary disk."""
    limits = ImportLimits.from_settings(settings)
    if path is not None:
        with FolderSource(path, limits, Confinement.here()) as folder:
            yield folder
        return
    if archive_key is None:
        raise ImportFlowError("give an archive_key or a path")
    with scratch(settings, "import-") as tmp:  # the zip lands on this host's data disk
        try:
            local = store.get_file(archive_key, Path(tmp) / "dataset.zip")
        except FileNotFoundError as error:
            raise ImportFlowError(f"the uploaded archive {archive_key} is gone from storage") from error
        with local.open("rb") as archive, ZipSource(archive, limits) as source:
            yield source


def _existing_hashes(settings: Settings, project_id: uuid.UUID) -> set[str]:
    with session_scope(settings.resolved_database_url) as session:
        if session.get(Project, project_id) is None:
            raise ImportFlowError(f"project {project_id} does not exist (deleted?)")
        return set(session.scalars(select(Media.sha256).where(Media.project_id == project_id)))


def read_and_store(source: DatasetSource, plan: ImportPlan, existing: set[str], store: ObjectStore,
                   thumbnail_size: int, progress: JobProgress) -> ImportReport:
    """Step 1: decode every image and mask of the plan, store the new ones; refuse what cannot be imported."""
    report = ImportReport(layout=plan.layout, refused=[*source.refused, *plan.refused], ignored=plan.ignored)
    seen = set(existing)
    total = max(len(plan.images), 1)
    for index, entry in enumerate(plan.images):
        progress.update(READ_SHARE * index / total, stage="reading", files=len(plan.images))
        try:
            data = source.read(entry.path)
            image = decode_image(data, thumbnail_size)
        except (FileRefused, ImageRejected) as error:
            report.refused.append(Refusal(entry.path, str(error)))
            if entry.mask_path is not None:
                report.refused.append(Refusal(entry.mask_path, "its image was refused"))
            continue
        try:
            mask = None if entry.mask_path is None else normalise_mask(source.read(entry.mask_path),
                                                                       (image.width, image.height))
        except (FileRefused, ImageRejected) as error:
            # The image goes with its mask: refused together, a corrected re-import brings both.
            report.refused.extend([Refusal(entry.mask_path or "", str(error)),
                                   Refusal(entry.path, "its mask was refused")])
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest in seen:
            report.duplicates += 1
            continue
        seen.add(digest)
        report.written.add(put_blob(store, data))
        if not store.exists(thumbnail_key(digest)):
            store.put(thumbnail_key(digest), image.thumbnail_png)
        mask_digest = put_blob(store, mask) if mask is not None else None
        if mask_digest is not None:
            report.written.add(mask_digest)
        facts = ImageFacts(sha256=digest, content_type=image.content_type, size_bytes=len(data), width=image.width,
                           height=image.height, thumbnail_png=None)
        report.stored.append(StoredImage(entry, facts, mask_digest))
    return report


def add_rows(settings: Settings, store: ObjectStore, project_id: uuid.UUID, report: ImportReport) -> list[StoredImage]:
    """Step 2: every media row in one transaction; images another request added meanwhile are duplicates."""
    added: list[StoredImage] = []
    with session_scope(settings.resolved_database_url) as session:
        if session.get(Project, project_id) is None:
            raise ImportFlowError(f"project {project_id} was deleted during the import")
        present = set(session.scalars(select(Media.sha256).where(Media.project_id == project_id)))
        assigner = assigner_for(session, project_id)
        for image in report.stored:
            if image.facts.sha256 in present:
                report.duplicates += 1
                continue
            present.add(image.facts.sha256)
            entry = image.entry
            add_media_row(session, store, project_id, display_filename(PurePosixPath(entry.path).name), entry.label,
                          image.facts, assigner=assigner, split=entry.split, defect_type=entry.defect_type,
                          mask_sha256=image.mask_sha256)
            added.append(image)
    return added


@flow(name="import-dataset", flow_run_name=import_run_name, log_prints=True)
def import_dataset(project_id: str, archive_key: str | None = None, path: str | None = None) -> dict[str, Any]:
    """Import the zip at ``archive_key`` in object storage, or the server folder ``path``, into the project."""
    settings = flow_settings()
    store = build_store(settings)
    project = uuid.UUID(project_id)
    progress = JobProgress("Importing a dataset")
    report: ImportReport | None = None
    try:
        existing = _existing_hashes(settings, project)
        with _source(store, settings, archive_key, path) as source:
            plan = plan_import(source.names)
            progress.update(0.0, stage="reading", layout=plan.layout, files=len(plan.images))
            report = step("read and store files", read_and_store, source, plan, existing, store,
                          settings.thumbnail_size, progress)
        progress.update(READ_SHARE, stage="adding", **report.metrics())
        added = step("add media", add_rows, settings, store, project, report)
    except BaseException:
        if report is not None and report.written:
            delete_unreferenced_blobs_quietly(settings.resolved_database_url, store, sorted(report.written))
        raise
    finally:
        if archive_key is not None:
            store.delete(archive_key)
    metrics = report.metrics(added)
    log.info("imported %d images into project %s (%d duplicates, %d refused)", metrics["added"], project_id,
             metrics["duplicates"], metrics["refused_total"])
    progress.done(**metrics)
    return metrics
