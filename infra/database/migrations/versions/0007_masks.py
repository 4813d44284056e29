"""defect masks and defect types on media and snapshot items

- ``media.mask_sha256``: a content-addressed defect mask (``blobs/...``, like the image) of an anomalous
  item; ``media.defect_type``: the kind of defect (imports take it from MVTec's ``test/<defect>/`` folders).
- ``snapshot_items`` freeze both, so a model's pixel metrics rest on the masks of its snapshot.
- ``ix_*_mask_sha256``: the blob reference check (``infra/blob_gc.py``) looks masks up by hash;
  ``ix_media_project_defect_created`` serves the media listing filtered on a defect type.

Columns are added without recreating ``media`` (no batch rebuild), so its ``media_counts`` triggers stay.

Revision ID: 0007_masks
Revises: 0005_jobs_index
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007_masks'
down_revision: str | None = '0005_jobs_index'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ('media', 'snapshot_items')


def upgrade() -> None:
    for table in _TABLES:
        op.add_column(table, sa.Column('defect_type', sa.String(length=64), nullable=True))
        op.add_column(table, sa.Column('mask_sha256', sa.String(length=64), nullable=True))
        op.create_index(f'ix_{table}_mask_sha256', table, ['mask_sha256'], unique=False)
    op.create_index('ix_media_project_defect_created', 'media', ['project_id', 'defect_type', 'created_at', 'id'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_media_project_defect_created', table_name='media')
    for table in reversed(_TABLES):
        op.drop_index(f'ix_{table}_mask_sha256', table_name=table)
        # SQLite drops a column in place since 3.35 (no table rebuild, so media's triggers stay).
        op.drop_column(table, 'mask_sha256')
        op.drop_column(table, 'defect_type')
