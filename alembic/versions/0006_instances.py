"""instances: when the shadow lease's holder took it; which server claimed an idempotency key

Revision ID: 0006
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shadow_lease") as batch:
        batch.add_column(sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("idempotency_record") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=160), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("idempotency_record") as batch:
        batch.drop_column("claimed_by")
    with op.batch_alter_table("shadow_lease") as batch:
        batch.drop_column("acquired_at")
