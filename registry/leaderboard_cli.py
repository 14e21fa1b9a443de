"""``registry leaderboard``: net metrics and the gate's verdict, with its reason, per version."""

from __future__ import annotations

from typing import Annotated

import typer

from registry.console import (
    ConfigOption,
    JsonOption,
    check_track,
    console,
    get_config,
    print_json,
    table,
)


def _pct(value: float | None, scale: float = 1e4, unit: str = "bp") -> str:
    return "-" if value is None else f"{value * scale:.2f} {unit}"


def _num(value: float | None, fmt: str = ".2f") -> str:
    return "-" if value is None else format(value, fmt)


def leaderboard(
    config: ConfigOption = None,
    track: Annotated[str | None, typer.Option(
        metavar="TRACK", help="Only this track (default: every track).",
        show_default=False)] = None,
    as_json: JsonOption = False,
) -> None:
    """Rank each track's versions on shadow net return, champion first, with the gate verdict.

    --json prints a list with one leaderboard per track, as GET /tracks/{track}/leaderboard
    returns it (curves included)."""
    from registry.db import opened_engine, read_session
    from registry.evidence import read_leaderboard  # scipy/pandas: only when asked
    from registry.store import list_tracks

    settings = get_config(config)
    with opened_engine(settings.database) as engine, read_session(engine) as session:
        known = list_tracks(session)
        check_track(track, known)
        tracks = [track] if track else known
        boards = [read_leaderboard(session, track=t, config=settings) for t in tracks]
    if as_json:
        from registry.api.schemas import Leaderboard

        print_json([Leaderboard.model_validate(b).model_dump(mode="json") for b in boards])
        return
    if not boards:
        console.print("no tracks yet: train some specs with `zoo --all-active`")
    for board in boards:
        rows = []
        for row in board["rows"]:
            m = row["metrics"]
            rows.append([row["version_id"], row["state"], m.get("days"),
                         _pct(m.get("mean_gross")), _pct(m.get("mean_net")),
                         _num(m.get("net_sharpe")), _num(m.get("mean_turnover"), ".3f"),
                         _num(m.get("breakeven_cost_bps"), ".1f"),
                         row.get("verdict") or ("champion" if row["state"] == "champion"
                                                else "-"),
                         row.get("reason") or ""])
        console.print(table(
            f"track {board['track']}: " + (f"promote {board['winner']}" if board["winner"]
                                           else "the champion stays"),
            ["version", "state", "days", "gross/day", "net/day", "net Sharpe", "turnover",
             "breakeven bps", "verdict", "reason"], rows))
        if board.get("winner_reason"):
            console.print(board["winner_reason"], style="dim")
