"""one live active pipeline per pipeline

Two simultaneous starts of the same pipeline both pass the API's "is it idle?" check; this partial
unique index lets only one of them insert its row.

Revision ID: 0002_one_live_active_pipeline
Revises: 0001_initial
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002_one_live_active_pipeline'
down_revision: str | None = '0001_initial'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = "status IN ('starting', 'running', 'stopping')"


def upgrade() -> None:
    # Rows left live by that race before this index existed: keep the newest per pipeline.
    op.execute(f"""
        UPDATE active_pipelines SET status = 'failed', message = 'superseded by a later start of the same pipeline'
        WHERE {LIVE} AND EXISTS (
            SELECT 1 FROM active_pipelines AS newer
            WHERE newer.pipeline_id = active_pipelines.pipeline_id
              AND newer.status IN ('starting', 'running', 'stopping')
              AND (newer.created_at > active_pipelines.created_at
                   OR (newer.created_at = active_pipelines.created_at AND newer.id > active_pipelines.id)))
    """)
    op.create_index('uq_active_pipelines_live', 'active_pipelines', ['pipeline_id'], unique=True,
                    sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE))


def downgrade() -> None:
    op.drop_index('uq_active_pipelines_live', table_name='active_pipelines')
