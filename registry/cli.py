"""``registry``: migrate, list versions and the audit log, serve the API, manage tokens, and
promote / retire / roll back through the REST API.

Each command imports what it needs when it runs: ``--help`` and the commands that go through
the REST API start without the database layer (SQLAlchemy, SQLModel) or Alembic, and the
database commands without Alembic or the HTTP client.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from registry.client import DEFAULT_URL, Client
from registry.console import (
    ConfigOption,
    DebugOption,
    JsonOption,
    LogLevel,
    TokenOption,
    TrackOption,
    UrlOption,
    VersionOption,
    check_track,
    console,
    err_console,
    get_config,
    new_app,
    print_json,
    run,
    table,
)
from registry.external_cli import external_app
from registry.gate_cli import print_gate
from registry.gc_cli import gc
from registry.ids import MAX_PAGE
from registry.leaderboard_cli import leaderboard
from registry.token_cli import token_app

app = new_app("Podium's model registry: versions, champions, promotions and their audit log.",
              completion=True)
State = Literal["challenger", "champion", "retired"]
LimitOption = Annotated[int, typer.Option(min=1, max=MAX_PAGE, metavar="N",
                                          help="At most this many rows.")]


@app.callback()
def main_options(version: VersionOption = False, debug: DebugOption = False) -> None:
    """Podium's model registry: versions, champions, promotions and their audit log."""


@app.command()
def migrate(config: ConfigOption = None) -> None:
    """Upgrade the database to the newest schema (creates it if it does not exist)."""
    from registry import migrations
    from registry.backup import check_schema
    from registry.db import opened_engine, safe_url, translate_db_errors

    settings = get_config(config)
    with opened_engine(settings.database) as engine:
        with translate_db_errors():
            check_schema(engine)  # a schema from a newer Podium is left alone
        before, after = migrations.upgrade_to_head(engine)
    where = safe_url(settings.database.url)
    if before == after:
        console.print(f"database already at {after} (head): {where}")
    else:
        console.print(f"database upgraded {before or 'empty'} → {after}: {where}")


@app.command()
def backup(
    path: Annotated[Path, typer.Argument(help="Where to write the backup (must not exist).")],
    config: ConfigOption = None,
) -> None:
    """Copy the SQLite database to PATH, consistently, even while it is being served."""
    from registry.backup import backup_sqlite
    from registry.db import safe_url

    settings = get_config(config)
    snapshot = backup_sqlite(settings.database.url, path)
    console.print(f"backed up {safe_url(settings.database.url)} to {snapshot.path} (schema "
                  f"{snapshot.revision}, {snapshot.size_bytes} bytes)", markup=False,
                  soft_wrap=True)


@app.command()
def restore(
    path: Annotated[Path, typer.Argument(help="A file written by `registry backup`.")],
    config: ConfigOption = None,
    force: Annotated[bool, typer.Option(help="Replace a database that has contents.")] = False,
) -> None:
    """Restore the SQLite database from a backup (checked first); then run `registry migrate`."""
    from registry.backup import restore_sqlite
    from registry.db import safe_url

    settings = get_config(config)
    snapshot = restore_sqlite(path, settings.database.url, force=force)
    console.print(f"restored {safe_url(settings.database.url)} from {path} "
                  f"(schema {snapshot.revision}); "
                  "run `registry migrate` if this Podium is newer", markup=False, soft_wrap=True)


@app.command()
def versions(
    config: ConfigOption = None,
    track: TrackOption = None,
    state: Annotated[State | None, typer.Option(help="Only versions in this state.",
                                                show_default=False)] = None,
    limit: LimitOption = 100,
    as_json: JsonOption = False,
) -> None:
    """List model versions, newest first."""
    from registry import store
    from registry.api.schemas import ModelVersionPublic
    from registry.db import opened_engine, read_session

    settings = get_config(config)
    with opened_engine(settings.database) as engine, read_session(engine) as session:
        check_track(track, store.list_tracks(session))
        rows = store.list_versions(session, track=track, state=state, limit=limit)
    if as_json:
        print_json([ModelVersionPublic.model_validate(v).model_dump(mode="json") for v in rows])
        return
    console.print(table(
        f"{len(rows)} version(s)",
        ["version", "track", "state", "spec", "train cutoff", "registered (UTC)"],
        ([v.version_id, v.track, v.state, v.spec_name or "-", v.train_cutoff,
          f"{store.as_utc(v.created_at):%Y-%m-%d %H:%M}"] for v in rows),
    ))


@app.command()
def audit(
    config: ConfigOption = None,
    track: TrackOption = None,
    limit: LimitOption = 50,
    as_json: JsonOption = False,
) -> None:
    """Show the audit log (transitions and refused promotions), newest first."""
    from registry import store
    from registry.api.schemas import AuditEntryPublic
    from registry.db import opened_engine, read_session

    settings = get_config(config)
    with opened_engine(settings.database) as engine, read_session(engine) as session:
        check_track(track, store.list_tracks(session))
        rows = store.list_audit(session, track=track, limit=limit)
    if as_json:
        print_json([AuditEntryPublic.model_validate(e).model_dump(mode="json") for e in rows])
        return
    console.print(table(
        f"{len(rows)} audit entr{'y' if len(rows) == 1 else 'ies'}",
        ["#", "when (UTC)", "track", "action", "version", "from → to", "displaced", "actor",
         "forced", "reason"],
        ([e.id, f"{store.as_utc(e.created_at):%Y-%m-%d %H:%M:%S}", e.track, e.action, e.version_id,
          f"{e.from_state or '-'} → {e.to_state}", e.displaced_version_id or "-", e.actor,
          "yes" if e.forced else "", e.reason] for e in rows),
    ))


ReasonOption = Annotated[str, typer.Option("--reason", metavar="TEXT",
                                           help="Why (kept in the audit log).")]


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(metavar="HOST",
                                             help="Interface (default: server.host).")] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, metavar="PORT",
                                             help="Port (default: server.port).")] = None,
    log_level: Annotated[LogLevel, typer.Option(help="How much the server logs.")] = "info",
) -> None:
    """Serve the REST API (and OpenAPI at /docs) in one process."""
    import logging

    import uvicorn

    from registry.api import create_app
    from registry.api.server import uvicorn_config
    from registry.db import safe_url

    settings = get_config(config)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    bind_host, bind_port = host or settings.server.host, port or settings.server.port
    settings = settings.model_copy(update={"server": settings.server.bound_to(bind_host)})
    app_ = create_app(settings, background=[_shadow_job(settings)] if
                      settings.shadow.in_serve else [])
    err_console.print(f"serving Podium on http://{bind_host}:{bind_port} (docs at /docs); "
                      f"database {safe_url(settings.database.url)}", markup=False, soft_wrap=True)
    server = settings.server.model_copy(update={"port": bind_port})
    uvicorn.Server(uvicorn_config(app_, server, log_level=log_level)).run()


def _shadow_job(settings):
    """Start the scheduled shadow job with the app; the database lease guards replicas."""

    def start(app_) -> object:
        from shadow.schedule import background_scheduler, trigger

        trigger(settings)  # a bad cron fails the start-up loudly
        scheduler = background_scheduler(settings, app_.state.engine)
        scheduler.start()
        return lambda: scheduler.shutdown(wait=False)

    return start


@app.command()
def promote(
    version_id: Annotated[str, typer.Argument(metavar="VERSION_ID",
                                              help="The challenger to promote.")],
    reason: ReasonOption,
    force: Annotated[bool, typer.Option("--force", help="Skip the gate (needs admin).")]
    = False,
    expect_champion: Annotated[str | None, typer.Option(
        "--expect-champion", metavar="VERSION_ID",
        help="Refuse unless this is still the champion ('' for none).",
        show_default=False)] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Promote a challenger through the REST API; prints the gate's verdict rule by rule.

    A refusal by the gate exits 1 after printing why (with --json: the refusal's problem
    JSON, report included)."""
    from registry.errors import GateRejected

    with _rest_client(url, token) as client:
        try:
            answer = client.promote(version_id, reason, force=force,
                                    expected_champion=expect_champion)
        except GateRejected as refused:  # the report, then the one-line refusal (exit 1)
            if as_json:
                print_json({"code": refused.code, "detail": refused.detail, **refused.extra})
            else:
                print_gate(refused.extra.get("gate"))
            raise
    _print_answer(answer, as_json=as_json)


@app.command()
def rollback(
    track: Annotated[str, typer.Argument(metavar="TRACK",
                                         help="The track to roll back.")],
    reason: ReasonOption,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Retire the champion and restore the one it replaced, through the REST API."""
    with _rest_client(url, token) as client:
        _print_answer(client.rollback(track, reason), as_json=as_json)


@app.command()
def retire(
    version_id: Annotated[str, typer.Argument(metavar="VERSION_ID",
                                              help="The challenger to retire.")],
    reason: ReasonOption,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Retire a challenger through the REST API."""
    with _rest_client(url, token) as client:
        _print_answer(client.retire(version_id, reason), as_json=as_json)


def _rest_client(url: str, token: str | None) -> Client:
    """A client for a write over REST; without a token, say how to give one (exit 2)."""
    if not token:
        raise typer.BadParameter(
            "this command needs a token: pass --token TOKEN or set $PODIUM_TOKEN (an admin "
            "makes one with `registry token create NAME --scope promote`)",
            param_hint="'--token'")
    return Client(url, token)


def _print_answer(answer: dict, *, as_json: bool) -> None:
    if as_json:
        print_json(answer)
        return
    print_gate(answer.get("gate"))
    _print_transition(answer)


def _print_transition(answer: dict) -> None:
    moved = answer["transition"]
    displaced = f"; {moved['displaced_version_id']} displaced" if moved.get(
        "displaced_version_id") else ""
    forced = " (forced)" if moved.get("forced") else ""
    console.print(f"{moved['action']}{forced}: {moved['version_id']} on {moved['track']} "
                  f"{moved['from_state'] or '-'} → {moved['to_state']}{displaced} "
                  f"[audit #{moved['audit_id']}, by {moved['actor']}]", markup=False)


app.command()(leaderboard)
app.command()(gc)
app.add_typer(token_app, name="token")
app.add_typer(external_app, name="external")


@app.command()
def demo(
    config: ConfigOption = None,
    no_serve: Annotated[bool, typer.Option(
        "--no-serve", help="Stop after the promotion and the curl lines instead of serving.")]
    = False,
    host: Annotated[str | None, typer.Option(metavar="HOST",
                                             help="Interface (default: server.host).")] = None,
    port: Annotated[int | None, typer.Option(
        min=0, max=65535, metavar="PORT",
        help="Port (default: server.port; 0 picks a free one).")] = None,
    tick_seconds: Annotated[int, typer.Option(
        "--tick-seconds", min=1, max=3600, metavar="SECONDS",
        help="While serving, a new market day lands and is scored this often.")] = 5,
) -> None:
    """Run the whole flow end to end: migrate, generate the market, train the incumbent (the
    first active spec), score it in shadow, crown it the first champion through the gate, train
    the other active specs as challengers, let most remaining days land and score them, show
    the leaderboard, then serve the API, promote the best challenger over REST (or show why
    the gate refuses) and print the curl lines to try next. Unless --no-serve, it keeps
    serving the API and the page at / while a market day lands every --tick-seconds, until
    Ctrl-C. Re-running reuses the database, the market and the trained versions.
    Exit codes: 0 done (a refusal by the gate is a result, not a failure), 1 a step failed,
    2 bad configuration."""
    from registry.demo.story import run_demo

    raise typer.Exit(run_demo(config, serve=not no_serve, host=host, port=port,
                              tick_seconds=tick_seconds))


def main() -> None:
    sys.exit(run(app))


if __name__ == "__main__":
    main()
