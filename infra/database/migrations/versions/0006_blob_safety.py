"""blob safety and the upload duplicate lookup

- ``blobs``: one row per stored content hash, the lock that orders blob writers and the blob
  collector (``infra/blob_gc.py``): an upload of bytes that are being deleted either sees them
  re-stored or makes the delete keep them. Rows appear as blobs are written or collected, so an
  existing installation needs no data migration.
- ``(project_id, sha256, label)`` on ``media``: the duplicate lookup of every upload
  (``infra/splits.py``) is an index seek; SQLite used ``(project_id, label, created_at)`` and scanned
  every normal image of the project per uploaded image.
- ``(project_id, label, split)`` on ``media``: the split rule's capped counts of normal images per
  split (a few index entries; with the label index SQLite read every normal row to test its split).

Revision ID: 0006_blob_safety
Revises: 0005_jobs_index
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006_blob_safety'
down_revision: str | None = '0005_jobs_index'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'blobs',
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('held_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('sha256'),
    )
    with op.batch_alter_table('media', schema=None) as batch_op:
        batch_op.create_index('ix_media_project_sha_label', ['project_id', 'sha256', 'label'], unique=False)
        batch_op.create_index('ix_media_project_label_split', ['project_id', 'label', 'split'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('media', schema=None) as batch_op:
        batch_op.drop_index('ix_media_project_label_split')
        batch_op.drop_index('ix_media_project_sha_label')
    op.drop_table('blobs')
