"""closed loop: media split/origin, champion models, pipelines that follow the champion

- media: ``split`` (train/eval, assigned once on add), ``origin`` (uploaded/collected), and for
  collected frames the ``pipeline_id`` that collected them and its ``score``;
- snapshot_items freeze the split with the label, so a retrain compares on the same eval set;
- models: ``champion`` (at most one per project, partial unique index);
- pipelines: ``follow_champion``, ``model_id`` nullable (a follower may leave it unset);
- active_pipelines: ``model_id``, the model a live run uses now.

Existing media get ``split='train'``, anomalous ones ``eval``.

Revision ID: 0003_closed_loop
Revises: 0002_one_live_active_pipeline
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003_closed_loop'
down_revision: str | None = '0002_one_live_active_pipeline'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHAMPION = "champion"


def upgrade() -> None:
    with op.batch_alter_table('media', schema=None) as batch_op:
        batch_op.add_column(sa.Column('split', sa.String(length=16), nullable=False, server_default='train'))
        batch_op.add_column(sa.Column('origin', sa.String(length=16), nullable=False, server_default='uploaded'))
        batch_op.add_column(sa.Column('pipeline_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('score', sa.Float(), nullable=True))
        batch_op.create_foreign_key('fk_media_pipeline_id', 'pipelines', ['pipeline_id'], ['id'],
                                    ondelete='SET NULL')
        batch_op.create_index('ix_media_project_split', ['project_id', 'split'], unique=False)
        batch_op.create_index('ix_media_project_origin_created', ['project_id', 'origin', 'created_at'],
                              unique=False)
    op.execute("UPDATE media SET split = 'eval' WHERE label = 'anomalous'")

    with op.batch_alter_table('snapshot_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('split', sa.String(length=16), nullable=False, server_default='train'))
    op.execute("UPDATE snapshot_items SET split = 'eval' WHERE label = 'anomalous'")

    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.add_column(sa.Column('champion', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.create_index('uq_models_champion', ['project_id'], unique=True,
                              sqlite_where=sa.text(CHAMPION), postgresql_where=sa.text(CHAMPION))

    with op.batch_alter_table('pipelines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('follow_champion', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.alter_column('model_id', existing_type=sa.Uuid(), nullable=True)

    with op.batch_alter_table('active_pipelines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('model_id', sa.Uuid(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('active_pipelines', schema=None) as batch_op:
        batch_op.drop_column('model_id')
    op.execute("DELETE FROM pipelines WHERE model_id IS NULL")
    with op.batch_alter_table('pipelines', schema=None) as batch_op:
        batch_op.alter_column('model_id', existing_type=sa.Uuid(), nullable=False)
        batch_op.drop_column('follow_champion')
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.drop_index('uq_models_champion')
        batch_op.drop_column('champion')
    with op.batch_alter_table('snapshot_items', schema=None) as batch_op:
        batch_op.drop_column('split')
    op.execute("DELETE FROM media WHERE label = 'unlabelled'")
    with op.batch_alter_table('media', schema=None) as batch_op:
        batch_op.drop_index('ix_media_project_origin_created')
        batch_op.drop_index('ix_media_project_split')
        batch_op.drop_constraint('fk_media_pipeline_id', type_='foreignkey')
        batch_op.drop_column('score')
        batch_op.drop_column('pipeline_id')
        batch_op.drop_column('origin')
        batch_op.drop_column('split')
