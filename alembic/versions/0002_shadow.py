"""shadow: settled scores (one row per version and day, ever), the runner lease, skip errors

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('shadow_lease',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('holder', sa.String(length=128), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_shadow_lease'))
    )
    op.create_table('shadow_error',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.String(length=80), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['model_version.version_id'], name=op.f('fk_shadow_error_version_id_model_version')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shadow_error'))
    )
    with op.batch_alter_table('shadow_error', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shadow_error_version_id'), ['version_id'], unique=False)

    op.create_table('shadow_score',
    sa.Column('version_id', sa.String(length=80), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('gross', sa.Float(), nullable=False),
    sa.Column('turnover', sa.Float(), nullable=False),
    sa.Column('cost', sa.Float(), nullable=False),
    sa.Column('net', sa.Float(), nullable=False),
    sa.Column('rank_ic', sa.Float(), nullable=True),
    sa.Column('n_assets', sa.Integer(), nullable=False),
    sa.Column('settled_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['model_version.version_id'], name=op.f('fk_shadow_score_version_id_model_version')),
    sa.PrimaryKeyConstraint('version_id', 'day', name=op.f('pk_shadow_score'))
    )


def downgrade() -> None:
    op.drop_table('shadow_score')
    with op.batch_alter_table('shadow_error', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shadow_error_version_id'))

    op.drop_table('shadow_error')
    op.drop_table('shadow_lease')
