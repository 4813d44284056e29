"""jobs index: a project's jobs list without a Prefect query per request

``jobs`` holds one row per job (Prefect flow run, same id): what ``GET /projects/{id}/jobs`` shows.
Prefect stays the truth; the API writes rows through and a poller keeps them in step
(``infra/orchestration/job_index.py``). Its first pass after this upgrade fills the table from
Prefect, so an existing installation's history appears without a data migration here.

- ``(project_id, created_at, id)`` and ``(project_id, type, created_at, id)`` match the list's
  filter and ``ORDER BY created_at DESC, id DESC``;
- ``ix_jobs_unsettled`` (partial: ``NOT settled``) finds the few rows that may still change.

Revision ID: 0005_jobs_index
Revises: 0004_media_list_indexes
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005_jobs_index'
down_revision: str | None = '0004_media_list_indexes'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'jobs',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('project_id', sa.Uuid(), nullable=True),
        sa.Column('type', sa.String(length=32), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('message', sa.Text(), nullable=True),
        sa.Column('progress', sa.Float(), nullable=False),
        sa.Column('metrics', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('settled', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column('synced_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_project_created', ['project_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_jobs_project_type_created', ['project_id', 'type', 'created_at', 'id'],
                              unique=False)
        batch_op.create_index('ix_jobs_unsettled', ['settled'], unique=False,
                              sqlite_where=sa.text('NOT settled'), postgresql_where=sa.text('NOT settled'))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_unsettled', sqlite_where=sa.text('NOT settled'),
                            postgresql_where=sa.text('NOT settled'))
        batch_op.drop_index('ix_jobs_project_type_created')
        batch_op.drop_index('ix_jobs_project_created')
    op.drop_table('jobs')
