"""`geti-inspect check`: every row has its bytes, every stored object has its owner, the schema is current.

Read-only unless ``repair`` is set. What a repair does, per finding:

- database behind the latest migration: migrate it (as `serve` would at start);
- a media row or capture without its bytes (image or defect mask): delete the row (nothing can serve
  or train on it);
- a snapshot with items whose bytes are gone, a ready model without its files: mark it ``failed``
  with the reason (models trained on the snapshot stay; the row says what broke);
- an object nothing refers to: delete it. Blobs and thumbnails go through the blob collector
  (infra/blob_gc.py), which checks references again under the blob lock, so a repair is safe
  while uploads run. (A report taken while an upload is in flight may list its blob for a moment.)
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from infra.blob_gc import REFERENCING_COLUMNS, delete_unreferenced_blobs, thumbnail_key
from infra.database.engine import session_scope
from infra.database.migrate import migration_state, upgrade
from infra.database.models import Capture, Media, Model, Project, Snapshot, SnapshotItem
from infra.model_files import checkpoint_key, openvino_prefix
from infra.settings import Settings
from infra.storage import ObjectStore, blob_key, build_store

_HASH = r"[0-9a-f]{64}"
_BLOB = re.compile(rf"^blobs/[0-9a-f]{{2}}/(?P<sha>{_HASH})$")
_THUMBNAIL = re.compile(rf"^thumbnails/[0-9a-f]{{2}}/(?P<sha>{_HASH})\.png$")
_OWNED = re.compile(r"^(?P<kind>models|projects)/(?P<id>[0-9a-f-]{36})/")


@dataclass
class Finding:
    """One broken item: what kind, which (an id or a storage key), what is wrong, and whether it was repaired."""

    kind: str
    item: str
    detail: str
    repaired: bool = False

    def line(self) -> str:
        return f"{'REPAIRED' if self.repaired else 'BROKEN'}  {self.kind:<16} {self.item}  {self.detail}"


class NothingToCheck(RuntimeError):
    """The data dir holds no platform database: nothing is created by a check."""


def check_platform(settings: Settings, repair: bool = False) -> list[Finding]:
    """Every finding, in a stable order; with ``repair``, each is fixed as the module docstring says."""
    url = settings.resolved_database_url
    if url.startswith("sqlite") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise NothingToCheck(f"no database at {url.removeprefix('sqlite:///')}: is --data-dir the one `serve` uses?")
    findings: list[Finding] = []
    current, head = migration_state(url)
    if current != head:
        finding = Finding("database", current or "(empty)", f"schema revision {current}, latest is {head}")
        findings.append(finding)
        if not repair:  # the tables below may not have the shape the checks expect
            return findings
        upgrade(url)
        finding.repaired = True
    store = build_store(settings, create=False)
    keys = set(store.list())
    with session_scope(url) as session:
        findings += _rows_without_bytes(session, keys, repair)
        findings += _objects_without_owner(session, store, keys, repair)
    return findings


def _rows_without_bytes(session: Session, keys: set[str], repair: bool) -> list[Finding]:
    findings = []
    for row_id, digest, mask in session.execute(select(Media.id, Media.sha256, Media.mask_sha256).order_by(Media.id)):
        missing = [blob_key(value) for value in (digest, mask) if value is not None and blob_key(value) not in keys]
        if missing:
            findings.append(Finding("media", str(row_id), f"bytes {', '.join(missing)} are missing"))
    for row_id, digest in session.execute(select(Capture.id, Capture.sha256).order_by(Capture.id)):
        if blob_key(digest) not in keys:
            findings.append(Finding("capture", str(row_id), f"bytes {blob_key(digest)} are missing"))
    lost: dict[uuid.UUID, int] = defaultdict(int)
    ready = select(Snapshot.id).where(Snapshot.status == "ready")  # a failed one already says it is broken
    for snapshot_id, digest, mask in session.execute(
            select(SnapshotItem.snapshot_id, SnapshotItem.sha256, SnapshotItem.mask_sha256)
            .where(SnapshotItem.snapshot_id.in_(ready))):
        lost[snapshot_id] += any(value is not None and blob_key(value) not in keys for value in (digest, mask))
    for snapshot_id in sorted(snapshot for snapshot, count in lost.items() if count):
        findings.append(Finding("snapshot", str(snapshot_id), f"{lost[snapshot_id]} item(s) have lost their bytes"))
    for (model_id,) in session.execute(select(Model.id).where(Model.status == "ready").order_by(Model.id)):
        missing = _missing_model_files(model_id, keys)
        if missing:
            findings.append(Finding("model", str(model_id), f"files missing: {', '.join(missing)}"))
    if repair and findings:
        _repair_rows(session, findings)
    return findings


def _missing_model_files(model_id: uuid.UUID, keys: set[str]) -> list[str]:
    """What a ready model needs: its IR (an .xml and a .bin) and its checkpoint."""
    prefix = openvino_prefix(model_id)
    ir = [key for key in keys if key.startswith(prefix)]
    missing = [f"{prefix}*{suffix}" for suffix in (".xml", ".bin") if not any(key.endswith(suffix) for key in ir)]
    return missing + ([checkpoint_key(model_id)] if checkpoint_key(model_id) not in keys else [])


def _repair_rows(session: Session, findings: list[Finding]) -> None:
    by_kind: dict[str, list[uuid.UUID]] = defaultdict(list)
    for finding in findings:
        by_kind[finding.kind].append(uuid.UUID(finding.item))
    session.execute(delete(Media).where(Media.id.in_(by_kind["media"])))
    session.execute(delete(Capture).where(Capture.id.in_(by_kind["capture"])))
    session.execute(update(Snapshot).where(Snapshot.id.in_(by_kind["snapshot"]))
                    .values(status="failed", error="media bytes of this snapshot are missing (geti-inspect check)"))
    session.execute(update(Model).where(Model.id.in_(by_kind["model"]))
                    .values(status="failed", error="model files are missing from storage (geti-inspect check)"))
    session.commit()
    for finding in findings:
        finding.repaired = True


def _objects_without_owner(session: Session, store: ObjectStore, keys: set[str], repair: bool) -> list[Finding]:
    referenced = set()
    for column in REFERENCING_COLUMNS:
        referenced |= set(session.scalars(select(column).distinct()))
    owners = {"models": {str(row) for row in session.scalars(select(Model.id))},
              "projects": {str(row) for row in session.scalars(select(Project.id))}}
    unreferenced_hashes: set[str] = set()
    findings = []
    for key in sorted(keys):
        content = _BLOB.match(key) or _THUMBNAIL.match(key)
        owned = _OWNED.match(key)
        if content:
            if content["sha"] in referenced:
                continue
            unreferenced_hashes.add(content["sha"])
            detail = "no media row, snapshot item or capture uses these bytes"
        elif owned:
            if owned["id"] in owners[owned["kind"]]:
                continue
            detail = f"its {owned['kind'][:-1]} {owned['id']} does not exist"
        else:
            detail = "not a key the platform writes"
        findings.append(Finding("object", key, detail))
    if repair and findings:
        # Blobs through the collector (re-checked under the blob lock); the rest are nobody's.
        delete_unreferenced_blobs(session, store, unreferenced_hashes)
        content_keys = {key for digest in unreferenced_hashes for key in (blob_key(digest), thumbnail_key(digest))}
        store.delete_many(finding.item for finding in findings if finding.item not in content_keys)
        remaining = set(store.list())
        for finding in findings:
            finding.repaired = finding.item not in remaining
    return findings


def summary(findings: list[Finding]) -> str:
    """The report `geti-inspect check` prints: each broken item on its line, then the counts."""
    if not findings:
        return "OK: every row has its bytes, every stored object has its owner, the database is current."
    broken = sum(not finding.repaired for finding in findings)
    lines = [finding.line() for finding in findings]
    lines.append(f"{len(findings)} problem(s): {len(findings) - broken} repaired, {broken} left"
                 + ("" if broken == 0 else " (run with --repair to fix them)"))
    return "\n".join(lines)
