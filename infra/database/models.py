"""SQLAlchemy models: the platform's relational state.

A job *is* a Prefect flow run: `jobs` is only an index of those runs (written through by the API
and kept in step by a poller, `infra/orchestration/job_index.py`), so listing a project's jobs costs
no Prefect call. Rows that belong to a job (models, snapshots, active pipelines) keep its id.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, Uuid, false, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: DateTime(timezone=True), uuid.UUID: Uuid}


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Project(Timestamped, Base):
    __tablename__ = "projects"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(255))

    media: Mapped[list[Media]] = relationship(back_populates="project", cascade="all, delete-orphan",
                                              passive_deletes=True)


class Media(Timestamped, Base):
    __tablename__ = "media"
    __table_args__ = (Index("ix_media_project_split", "project_id", "split"),
                      Index("ix_media_project_origin_created", "project_id", "origin", "created_at"),
                      # Newest-first listing pages (api/routers/media.py), with and without a label filter.
                      Index("ix_media_project_created", "project_id", "created_at", "id"),
                      Index("ix_media_project_label_created", "project_id", "label", "created_at", "id"),
                      # The listing filtered on a defect type (imports keep MVTec's defect folder names).
                      Index("ix_media_project_defect_created", "project_id", "defect_type", "created_at", "id"))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    label: Mapped[str] = mapped_column(String(32), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    content_type: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    # "train" or "eval", assigned once when the item is added: the stable evaluation set.
    split: Mapped[str] = mapped_column(String(16), default="train", server_default="train")
    # "uploaded" by a person or "collected" by a pipeline (which then records its id and score).
    origin: Mapped[str] = mapped_column(String(16), default="uploaded", server_default="uploaded")
    pipeline_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("pipelines.id", ondelete="SET NULL", name="fk_media_pipeline_id"), nullable=True
    )
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Anomalous items only: the kind of defect (e.g. MVTec's "crack") and a content-addressed defect mask
    # (PNG, same size as the image, 255 = defect), which lets training report pixel metrics.
    defect_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mask_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)

    project: Mapped[Project] = relationship(back_populates="media")


class MediaCount(Base):
    """Media rows per project and label, kept exact by database triggers (migration 0004).

    Listings read their `total` here: a key lookup instead of counting 100,000 rows. Written only by
    the triggers, never by the application.
    """

    __tablename__ = "media_counts"

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    label: Mapped[str] = mapped_column(String(32), primary_key=True)
    total: Mapped[int] = mapped_column(Integer)


class Configured(Timestamped):
    """A typed, configured project resource: the shape shared by sources and sinks."""

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(255))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Source(Configured, Base):
    __tablename__ = "sources"


class Sink(Configured, Base):
    __tablename__ = "sinks"


class Snapshot(Base):
    __tablename__ = "snapshots"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32), default="pending")
    media_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    job_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True, index=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    items: Mapped[list[SnapshotItem]] = relationship(cascade="all, delete-orphan", passive_deletes=True)


class SnapshotItem(Base):
    """One frozen media entry: the blob hash, label, split, defect type and mask hash, independent of the media row."""

    __tablename__ = "snapshot_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    snapshot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("snapshots.id", ondelete="CASCADE"), index=True)
    media_id: Mapped[uuid.UUID] = mapped_column()
    filename: Mapped[str] = mapped_column(String(255))
    label: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    split: Mapped[str] = mapped_column(String(16), default="train", server_default="train")
    defect_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mask_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)


class Model(Timestamped, Base):
    __tablename__ = "models"
    # At most one champion per project.
    __table_args__ = (Index("uq_models_champion", "project_id", unique=True,
                            sqlite_where=text("champion"), postgresql_where=text("champion")),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    architecture: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(32), default="openvino")
    status: Mapped[str] = mapped_column(String(32), default="training")
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    snapshot_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    job_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True, index=True)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mlflow_model_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    mlflow_model_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    champion: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Pipeline(Timestamped, Base):
    __tablename__ = "pipelines"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    # RESTRICT: the API answers 409 before the database would refuse the delete.
    # May be null when the pipeline follows the project's champion.
    model_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("models.id", ondelete="RESTRICT"), index=True,
                                                       nullable=True)
    follow_champion: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    source_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sources.id", ondelete="RESTRICT"), index=True)
    sink_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sinks.id", ondelete="RESTRICT"), index=True)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)


LIVE_STATUSES = ("starting", "running", "stopping")  # an active pipeline whose flow run may still work
LIVE_STATUSES_SQL = f"status IN ({', '.join(repr(status) for status in LIVE_STATUSES)})"


class ActivePipeline(Base):
    """A running (or finished) flow run of the inference deployment."""

    __tablename__ = "active_pipelines"
    # At most one live run per pipeline, also when two starts race past the API's idle check.
    __table_args__ = (Index("uq_active_pipelines_live", "pipeline_id", unique=True,
                            sqlite_where=text(LIVE_STATUSES_SQL), postgresql_where=text(LIVE_STATUSES_SQL)),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    pipeline_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"), index=True)
    flow_run_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    model_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)  # the model the run uses now
    status: Mapped[str] = mapped_column(String(32), default="starting")
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    control_url: Mapped[str | None] = mapped_column(String(255), nullable=True)
    control_token: Mapped[str | None] = mapped_column(String(128), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    stopped_at: Mapped[datetime | None] = mapped_column(nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Capture(Base):
    __tablename__ = "captures"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    active_pipeline_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("active_pipelines.id", ondelete="CASCADE"), index=True
    )
    sha256: Mapped[str] = mapped_column(String(64))
    anomaly_score: Mapped[float] = mapped_column(Float)
    timestamp: Mapped[datetime] = mapped_column(default=utcnow)


class JobRecord(Base):
    """The index entry of one job (a Prefect flow run, whose id it has): what the jobs list shows.

    Prefect stays the truth. A `settled` row (finished, and read at least `SETTLED_AFTER_S` after it
    ended) is served as stored; any other row is refreshed from Prefect before it is shown.
    """

    __tablename__ = "jobs"
    # The jobs list: a project's jobs newest first, with and without a type filter; the rows to refresh.
    __table_args__ = (Index("ix_jobs_project_created", "project_id", "created_at", "id"),
                      Index("ix_jobs_project_type_created", "project_id", "type", "created_at", "id"),
                      Index("ix_jobs_unsettled", "settled", sqlite_where=text("NOT settled"),
                            postgresql_where=text("NOT settled")))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    project_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)  # no FK: a run may name any project
    type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column()  # the flow run's: the list's order
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    settled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # When this content was read from Prefect: an older read never overwrites a newer one.
    synced_at: Mapped[datetime] = mapped_column(default=utcnow)
