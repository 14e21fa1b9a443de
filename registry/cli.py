"""``registry``: migrate the database, list versions and the audit log."""

from __future__ import annotations

import sys

import typer

from registry import migrations, store
from registry.console import ConfigOption, console, get_config, new_app, run, table
from registry.db import make_engine, read_session, translate_db_errors
from registry.leaderboard_cli import leaderboard
from registry.store import as_utc

app = new_app("Podium's model registry: versions, champions, promotions and their audit log.")


@app.command()
def migrate(config: ConfigOption = None) -> None:
    """Upgrade the database to the newest schema (creates it if it does not exist)."""
    settings = get_config(config)
    engine = make_engine(settings.database.url)
    try:
        with translate_db_errors():
            before = migrations.current_revision(engine)
            migrations.upgrade(engine)
            after = migrations.current_revision(engine)
    finally:
        engine.dispose()
    if before == after:
        console.print(f"database already at {after} (head): {_safe_url(settings)}")
    else:
        console.print(f"database upgraded {before or 'empty'} → {after}: {_safe_url(settings)}")


@app.command()
def versions(
    config: ConfigOption = None,
    track: str | None = typer.Option(None, help="Only this track."),
    state: str | None = typer.Option(None, help="challenger, champion or retired."),
    limit: int = typer.Option(100, min=1, max=store.MAX_PAGE, help="At most this many rows."),
) -> None:
    """List model versions, newest first."""
    settings = get_config(config)
    engine = make_engine(settings.database.url)
    try:
        with read_session(engine) as session:
            rows = store.list_versions(session, track=track, state=state, limit=limit)
    finally:
        engine.dispose()
    console.print(table(
        f"{len(rows)} version(s)",
        ["version", "track", "state", "spec", "train cutoff", "registered (UTC)"],
        ([v.version_id, v.track, v.state, v.spec_name or "-", v.train_cutoff,
          f"{as_utc(v.created_at):%Y-%m-%d %H:%M}"] for v in rows),
    ))


@app.command()
def audit(
    config: ConfigOption = None,
    track: str | None = typer.Option(None, help="Only this track."),
    limit: int = typer.Option(50, min=1, max=store.MAX_PAGE, help="At most this many rows."),
) -> None:
    """Show the audit log of transitions, newest first."""
    settings = get_config(config)
    engine = make_engine(settings.database.url)
    try:
        with read_session(engine) as session:
            rows = store.list_audit(session, track=track, limit=limit)
    finally:
        engine.dispose()
    console.print(table(
        f"{len(rows)} audit entr{'y' if len(rows) == 1 else 'ies'}",
        ["#", "when (UTC)", "track", "action", "version", "from → to", "displaced", "actor",
         "forced", "reason"],
        ([e.id, f"{as_utc(e.created_at):%Y-%m-%d %H:%M:%S}", e.track, e.action, e.version_id,
          f"{e.from_state or '-'} → {e.to_state}", e.displaced_version_id or "-", e.actor,
          "yes" if e.forced else "", e.reason] for e in rows),
    ))


app.command()(leaderboard)


def _safe_url(settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.database.url).render_as_string(hide_password=True)


def main() -> None:
    sys.exit(run(app))


if __name__ == "__main__":
    main()
