"""evidence tag: a track's tag, replaced by triggers whenever its evidence changes

A track's stored leaderboard, gate judgement and page are valid while this tag holds; the
database replaces it (with a random value, so a restored older snapshot cannot bring back a
tag already seen) in the same transaction as any change to the track's versions or their
settled shadow days, whoever writes them. Note: SQLite drops a table's triggers when a batch
migration rebuilds it; a later migration that rebuilds ``shadow_score`` or ``model_version``
must create them again (``create_evidence_triggers``).

Revision ID: 0007
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None

_PG_NEW_TAG = "floor(random() * 9007199254740991)::bigint"
_SQLITE_NEW_TAG = "abs(random() % 9007199254740991)"
# (table, the track(s) a changed row belongs to, per event), for SQLite's per-event triggers
_SQLITE_TRIGGERS = {
    ("shadow_score", "INSERT"): "(SELECT track FROM model_version "
                                "WHERE version_id = NEW.version_id)",
    ("shadow_score", "UPDATE"): "(SELECT track FROM model_version "
                                "WHERE version_id IN (NEW.version_id, OLD.version_id))",
    ("shadow_score", "DELETE"): "(SELECT track FROM model_version "
                                "WHERE version_id = OLD.version_id)",
    ("model_version", "INSERT"): "(NEW.track)",
    ("model_version", "UPDATE"): "(NEW.track, OLD.track)",
    ("model_version", "DELETE"): "(OLD.track)",
}


def create_evidence_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION track_evidence_changed() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN "
            "IF TG_TABLE_NAME = 'shadow_score' THEN "
            f"UPDATE track SET evidence_tag = {_PG_NEW_TAG} WHERE name IN ("
            "SELECT m.track FROM model_version m "
            "WHERE m.version_id IN (NEW.version_id, OLD.version_id)); "
            f"ELSE UPDATE track SET evidence_tag = {_PG_NEW_TAG} "
            "WHERE name IN (NEW.track, OLD.track); "
            "END IF; RETURN NULL; END $$")
        for table in ("shadow_score", "model_version"):
            op.execute(f"CREATE TRIGGER {table}_evidence_changed AFTER INSERT OR UPDATE OR "
                       f"DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION "
                       "track_evidence_changed()")
        return
    for (table, event), tracks in _SQLITE_TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {table}_evidence_{event.lower()} AFTER {event} ON {table} "
                   f"BEGIN UPDATE track SET evidence_tag = {_SQLITE_NEW_TAG} "
                   f"WHERE name IN {tracks}; END")


def drop_evidence_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("shadow_score", "model_version"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_evidence_changed ON {table}")
        op.execute("DROP FUNCTION IF EXISTS track_evidence_changed()")
        return
    for table, event in _SQLITE_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_evidence_{event.lower()}")


def upgrade() -> None:
    with op.batch_alter_table("track") as batch:
        batch.add_column(sa.Column("evidence_tag", sa.BigInteger(), nullable=False,
                                   server_default="0"))
    create_evidence_triggers()


def downgrade() -> None:
    drop_evidence_triggers()
    with op.batch_alter_table("track") as batch:
        batch.drop_column("evidence_tag")
