"""external versions: kind and provenance on model_version, submitted predictions' record

A version is ``builtin`` (a bundle trained by Podium) or ``external`` (trained anywhere,
competing through daily predictions submitted before each outcome lands). Every existing
version is built in. ``prediction_submission`` records when each day's predictions arrived.

Revision ID: 0005
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0006"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("model_version", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), nullable=False,
                                      server_default="builtin"))
        batch_op.add_column(sa.Column("provenance", JSON, nullable=True))
        batch_op.create_check_constraint("kind", "kind IN ('builtin', 'external')")

    op.create_table(
        "prediction_submission",
        sa.Column("version_id", sa.String(length=80), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("arrived_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("n_assets", sa.Integer(), nullable=False),
        sa.Column("n_unknown", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["version_id"], ["model_version.version_id"],
                                name=op.f("fk_prediction_submission_version_id_model_version")),
        sa.PrimaryKeyConstraint("version_id", "day", name=op.f("pk_prediction_submission")),
    )


def downgrade() -> None:
    op.drop_table("prediction_submission")
    with op.batch_alter_table("model_version", schema=None) as batch_op:
        batch_op.drop_constraint("kind", type_="check")
        batch_op.drop_column("provenance")
        batch_op.drop_column("kind")
