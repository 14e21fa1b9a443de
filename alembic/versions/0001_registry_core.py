"""registry core: tracks, versions, the append-only audit log

At most one champion per track: a partial unique index. The audit log refuses UPDATE and
DELETE through triggers, on SQLite and PostgreSQL alike.

Revision ID: 0001
Revises: 
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('track',
    sa.Column('name', sa.String(length=48), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_track'))
    )
    op.create_table('model_version',
    sa.Column('version_id', sa.String(length=80), nullable=False),
    sa.Column('track', sa.String(length=48), nullable=False),
    sa.Column('label', sa.String(length=48), nullable=False),
    sa.Column('train_cutoff', sa.Date(), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('spec_name', sa.String(length=48), nullable=True),
    sa.Column('bundle_path', sa.String(length=512), nullable=False),
    sa.Column('bundle_digest', sa.String(length=64), nullable=False),
    sa.Column('details', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('champion_since', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("state IN ('challenger', 'champion', 'retired')", name=op.f('ck_model_version_state')),
    sa.ForeignKeyConstraint(['track'], ['track.name'], name=op.f('fk_model_version_track_track')),
    sa.PrimaryKeyConstraint('version_id', name=op.f('pk_model_version'))
    )
    with op.batch_alter_table('model_version', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_version_track'), ['track'], unique=False)
        batch_op.create_index('uq_model_version_one_champion', ['track'], unique=True, sqlite_where=sa.text("state = 'champion'"), postgresql_where=sa.text("state = 'champion'"))

    op.create_table('audit_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('track', sa.String(length=48), nullable=False),
    sa.Column('version_id', sa.String(length=80), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('from_state', sa.String(length=16), nullable=True),
    sa.Column('to_state', sa.String(length=16), nullable=False),
    sa.Column('displaced_version_id', sa.String(length=80), nullable=True),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('gate_report', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('forced', sa.Boolean(), nullable=False),
    sa.Column('request_id', sa.String(length=128), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['track'], ['track.name'], name=op.f('fk_audit_entry_track_track')),
    sa.ForeignKeyConstraint(['version_id'], ['model_version.version_id'], name=op.f('fk_audit_entry_version_id_model_version')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_entry'))
    )
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_entry_track'), ['track'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_entry_version_id'), ['version_id'], unique=False)
    _append_only("audit_entry")


def _append_only(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{table} is append-only'; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )


def _drop_append_only(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS {table}_append_only()")
    else:
        for event in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{event}")



def downgrade() -> None:
    _drop_append_only("audit_entry")
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_entry_version_id'))
        batch_op.drop_index(batch_op.f('ix_audit_entry_track'))

    op.drop_table('audit_entry')
    with op.batch_alter_table('model_version', schema=None) as batch_op:
        batch_op.drop_index('uq_model_version_one_champion', sqlite_where=sa.text("state = 'champion'"), postgresql_where=sa.text("state = 'champion'"))
        batch_op.drop_index(batch_op.f('ix_model_version_track'))

    op.drop_table('model_version')
    op.drop_table('track')
