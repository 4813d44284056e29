"""media listing at scale: newest-first indexes and per-project media counts kept by triggers

- ``(project_id, created_at, id)`` and ``(project_id, label, created_at, id)`` match the listing's
  filter and ``ORDER BY created_at DESC, id DESC``: page 1 is an index walk instead of a sort of every
  media row of the project, and a deep page skips index entries only (``api/paging.py``).
- ``media_counts``: media per project and label, kept exact by triggers on ``media``
  (``infra/database/media_counts.py``), so a listing's ``total`` is a key lookup.

Revision ID: 0004_media_list_indexes
Revises: 0003_closed_loop
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from infra.database import media_counts

revision: str = '0004_media_list_indexes'
down_revision: str | None = '0003_closed_loop'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('media', schema=None) as batch_op:
        batch_op.create_index('ix_media_project_created', ['project_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_media_project_label_created', ['project_id', 'label', 'created_at', 'id'],
                              unique=False)
    op.create_table(
        'media_counts',
        sa.Column('project_id', sa.Uuid(), nullable=False),
        sa.Column('label', sa.String(length=32), nullable=False),
        sa.Column('total', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('project_id', 'label'),
    )
    media_counts.create_triggers(op.get_bind())
    media_counts.recount(op.get_bind())


def downgrade() -> None:
    media_counts.drop_triggers(op.get_bind())
    op.drop_table('media_counts')
    with op.batch_alter_table('media', schema=None) as batch_op:
        batch_op.drop_index('ix_media_project_label_created')
        batch_op.drop_index('ix_media_project_created')
