"""``registry token``: create, list and revoke the API's bearer tokens (only a token's SHA-256
is stored; a token is printed once, when it is created)."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from registry.console import (
    ConfigOption,
    JsonOption,
    console,
    err_console,
    get_config,
    new_app,
    print_json,
    table,
)

token_app = new_app("API tokens (bearer; scopes read ⊂ promote ⊂ admin).")

Scope = Literal["read", "promote", "admin"]

@token_app.command("create")
def token_create(
    name: Annotated[str | None, typer.Argument(
        metavar="NAME", help="Who holds it (the audit's actor).", show_default=False)] = None,
    scope: Annotated[Scope, typer.Option("--scope", help="What it may do.")] = ...,
    name_option: Annotated[str | None, typer.Option(
        "--name", metavar="NAME", hidden=True, help="The same as NAME.")] = None,
    config: ConfigOption = None,
) -> None:
    """Create a token and print it once; only its SHA-256 is stored.

    `registry token create ci-deployer --scope promote` (`--name NAME` is accepted too)."""
    from registry.auth import create_token
    from registry.db import opened_engine, write_session

    name = _one_name(name, name_option)
    settings = get_config(config)
    with opened_engine(settings.database) as engine, write_session(engine) as session:
        row, token = create_token(session, name=name, scope=scope)
    print(token)
    err_console.print(f"token {row.name!r} (scope {row.scope}) created; it is shown only "
                      "this once: store it now", markup=False)


def _one_name(argument: str | None, option: str | None) -> str:
    if argument is not None and option is not None and argument != option:
        raise typer.BadParameter(f"two names given ({argument!r} and --name {option!r})",
                                 param_hint="NAME")
    name = argument if argument is not None else option
    if name is None:
        raise typer.BadParameter("missing: give the token's NAME", param_hint="NAME")
    return name


@token_app.command("list")
def token_list(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """List the tokens by name, revoked ones included.

    Shows each token's name, scope and dates: never a token or its hash."""
    from registry.auth import list_tokens
    from registry.db import opened_engine, read_session
    from registry.store import as_utc

    settings = get_config(config)
    with opened_engine(settings.database) as engine, read_session(engine) as session:
        rows = list_tokens(session)
    if as_json:
        print_json([{"name": t.name, "scope": t.scope,
                     "created_at": as_utc(t.created_at).isoformat(),
                     "revoked_at": as_utc(t.revoked_at).isoformat() if t.revoked_at else None}
                    for t in rows])
        return
    console.print(table(
        f"{len(rows)} token(s)",
        ["name", "scope", "created (UTC)", "revoked (UTC)"],
        ([t.name, t.scope, f"{as_utc(t.created_at):%Y-%m-%d %H:%M:%S}",
          f"{as_utc(t.revoked_at):%Y-%m-%d %H:%M:%S}" if t.revoked_at else "-"] for t in rows),
    ))


@token_app.command("revoke")
def token_revoke(
    name: Annotated[str, typer.Argument(metavar="NAME",
                                        help="The token's name (see `registry token list`).")],
    config: ConfigOption = None,
) -> None:
    """Revoke a token; running servers refuse it within 5 s.

    The row stays, marked revoked, so its name cannot be reused. A server keeps a token it has
    checked for at most 5 seconds, so the revoked token stops working there within that time.
    Exit codes: 0 revoked, 1 no such token or already revoked, 2 bad usage or configuration."""
    from registry.auth import revoke_token
    from registry.db import opened_engine, write_session

    settings = get_config(config)
    with opened_engine(settings.database) as engine, write_session(engine) as session:
        row = revoke_token(session, name)
    err_console.print(f"token {row.name!r} (scope {row.scope}) revoked; running servers "
                      "refuse it within 5 seconds", markup=False, soft_wrap=True)
