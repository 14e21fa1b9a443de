"""landed days: the digest of each track's day when it was first used

A day whose content changes after it was used (a rewritten partition) is refused by the shadow
runner, naming the day; settled scores are never recomputed from different data.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('landed_day',
    sa.Column('track', sa.String(length=48), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('track', 'day', name=op.f('pk_landed_day'))
    )


def downgrade() -> None:
    op.drop_table('landed_day')
