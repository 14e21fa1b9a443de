"""evidence tag by statement on PostgreSQL: one replacement per statement, not per row

0007's triggers replace a track's ``evidence_tag`` for each changed row, so a shadow run that
settles 2,500 days rewrites the track's row 2,500 times in one transaction. On PostgreSQL the
triggers now fire once per statement and find the tracks from the statement's transition
tables (``REFERENCING NEW TABLE`` / ``OLD TABLE``). PostgreSQL refuses transition tables on a
trigger that fires for more than one event, so each table has one trigger (and one function)
per event; a statement that changes no row replaces no tag. ``TRUNCATE``, which fires no row
trigger, now replaces every track's tag too. The tag still changes in the same transaction as
any change, whoever writes it.

SQLite has only row triggers, and 0007's stay. A ``WHEN`` clause could soundly skip a
replacement only when the tag has already been replaced earlier in the same transaction, and
nothing a trigger can read tells that transaction from an earlier one: a condition on the rows
themselves (other days of the version with the same ``settled_at``, say) holds as well for rows
another transaction wrote, and would leave a tag a reader has already seen. Each replacement
rewrites one small row on a page the transaction has already dirtied (docs/benchmarks.md,
"Settling scores and the evidence tag", measures it).

Note (as in 0007): SQLite drops a table's triggers when a batch migration rebuilds it; a later
migration that rebuilds ``shadow_score`` or ``model_version`` must create them again with this
revision's ``create_evidence_triggers`` (which, on SQLite, creates 0007's).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from types import ModuleType

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_PG_NEW_TAG = "floor(random() * 9007199254740991)::bigint"
# each event's transition tables: (OLD or NEW, the name the trigger's function reads it by)
_TRANSITION_TABLES = {"INSERT": (("NEW", "new_rows"),),
                      "UPDATE": (("NEW", "new_rows"), ("OLD", "old_rows")),
                      "DELETE": (("OLD", "old_rows"),)}
# per table: the column that leads to a changed row's track, and the query of those tracks
# ({keys}: a query of that column over the changed rows)
_TRACKS_OF = {
    "shadow_score": ("version_id", "SELECT track FROM model_version WHERE version_id IN ({keys})"),
    "model_version": ("track", "{keys}"),
}


def _migration_0007() -> ModuleType:
    """Migration 0007, whose row triggers this revision replaces and, downgraded, restores."""
    script = op.get_context().script
    assert script is not None, "migrations run through Alembic's script directory"
    return script.get_revision("0007").module


def _is_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def create_evidence_triggers() -> None:
    if not _is_postgresql():
        _migration_0007().create_evidence_triggers()
        return
    for table, (key, tracks) in _TRACKS_OF.items():
        for event, transitions in _TRANSITION_TABLES.items():
            keys = " UNION ALL ".join(f"SELECT {key} FROM {name}" for _, name in transitions)
            referencing = " ".join(f"{kind} TABLE AS {name}" for kind, name in transitions)
            name = f"{table}_evidence_{event.lower()}"
            op.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                       f"UPDATE track SET evidence_tag = {_PG_NEW_TAG} "
                       f"WHERE name IN ({tracks.format(keys=keys)}); RETURN NULL; END $$")
            op.execute(f"CREATE TRIGGER {name} AFTER {event} ON {table} REFERENCING "
                       f"{referencing} FOR EACH STATEMENT EXECUTE FUNCTION {name}()")
    op.execute("CREATE FUNCTION evidence_truncated() RETURNS trigger LANGUAGE plpgsql AS $$ "
               f"BEGIN UPDATE track SET evidence_tag = {_PG_NEW_TAG}; RETURN NULL; END $$")
    for table in _TRACKS_OF:
        op.execute(f"CREATE TRIGGER {table}_evidence_truncate AFTER TRUNCATE ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION evidence_truncated()")


def drop_evidence_triggers() -> None:
    if not _is_postgresql():
        _migration_0007().drop_evidence_triggers()
        return
    for table in _TRACKS_OF:
        for event in (*_TRANSITION_TABLES, "TRUNCATE"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_evidence_{event.lower()} ON {table}")
        for event in _TRANSITION_TABLES:
            op.execute(f"DROP FUNCTION IF EXISTS {table}_evidence_{event.lower()}()")
    op.execute("DROP FUNCTION IF EXISTS evidence_truncated()")


def upgrade() -> None:
    if _is_postgresql():  # SQLite keeps 0007's row triggers (see above)
        _migration_0007().drop_evidence_triggers()
        create_evidence_triggers()


def downgrade() -> None:
    if _is_postgresql():
        drop_evidence_triggers()
        _migration_0007().create_evidence_triggers()
