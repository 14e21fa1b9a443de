"""The demo's last step: serve the real API, promote the best challenger over REST as a user
would (or show the gate's refusal), print the commands to try next, and keep serving until
Ctrl-C."""

from __future__ import annotations

import datetime as dt
import signal
import socket

from sqlalchemy import Engine

from registry.config import PodiumConfig, is_loopback
from registry.console import console
from registry.db import read_session, write_session
from registry.demo.server import ThreadedServer
from registry.demo.ticks import scheduled_shadow_job
from registry.errors import GateRejected


def serve_and_promote(settings: PodiumConfig, engine: Engine, listener: socket.socket, *,
                      url: str, keep_serving: bool, tick_seconds: int) -> None:
    """Serve the API on ``listener``, promote the best challenger through it, and (with
    ``keep_serving``) go on serving until Ctrl-C."""
    from registry.api import create_app
    from registry.auth import create_token

    host = listener.getsockname()[0]
    public = is_loopback(host)
    serving = _serving_settings(settings, host=host, public_reads=public,
                                tick_seconds=tick_seconds)
    background = [scheduled_shadow_job(serving)] if keep_serving else []
    app = create_app(serving, background=background)
    server = ThreadedServer(app, listener, serving.server)
    server.start()
    try:
        console.print(f"serving the real API at {url}/api/v1 (OpenAPI at {url}/docs)")
        if public:
            console.print("public reads are on for the demo (it listens on loopback only): the "
                          "page and the GET endpoints need no token")
        with write_session(engine) as session:
            row, token = create_token(
                session, name=f"demo-{dt.datetime.now(dt.UTC):%Y%m%dt%H%M%S%f}",
                scope="promote")
        console.print(f"created the promote-scope token {row.name!r} (shown once, below)")
        best = _promote_best(settings, engine, url=url, token=token)
        _print_next_steps(settings, url=url, token=token, best=best, serving=keep_serving)
        if keep_serving:
            _serve_until_interrupted(server, url=url, tick_seconds=tick_seconds,
                                     days=serving.shadow.feed_days_per_tick)
    finally:
        server.stop()


def _serving_settings(settings: PodiumConfig, *, host: str, public_reads: bool,
                      tick_seconds: int) -> PodiumConfig:
    """The demo's server: as ``registry serve`` would run on ``host`` (its host check, timeouts
    and limits), with the scheduled job on a seconds-level interval, landing days."""
    shadow = settings.shadow.model_copy(update={
        "schedule": f"@every {tick_seconds}s", "in_serve": True,
        "feed_days_per_tick": settings.shadow.feed_days_per_tick or 1})
    server = settings.server.bound_to(host).model_copy(update={
        "public_reads": settings.server.public_reads or public_reads})
    return settings.model_copy(update={"shadow": shadow, "server": server})


def _promote_best(settings: PodiumConfig, engine: Engine, *, url: str, token: str) -> str | None:
    """POST /promote for the leaderboard's best challenger; print the transition or refusal."""
    from registry.client import Client
    from registry.evidence import read_leaderboard

    with read_session(engine) as session:
        board = read_leaderboard(session, track=settings.track, config=settings)
    best = board["winner"] or next((row["version_id"] for row in board["rows"]
                                    if row["state"] == "challenger"), None)
    if best is None:
        console.print("no challenger to promote: every version is champion or retired")
        return None
    console.print(f"POST {url}/api/v1/versions/{best}/promote (the best challenger on the "
                  "leaderboard)", markup=False, soft_wrap=True)
    with Client(url, token) as client:
        try:
            answer = client.promote(best, "demo: the best challenger on the leaderboard")
        except GateRejected as refused:
            gate = refused.extra.get("gate") or {}
            console.print(f"[yellow]refused (409)[/]: the gate says {gate.get('verdict', '?')} "
                          f"for {best}; {settings.track} keeps its champion. Reasons:")
            for reason in gate.get("reasons") or [refused.detail]:
                console.print(f"  - {reason}", markup=False, soft_wrap=True)
            return best
    moved, gate = answer["transition"], answer.get("gate") or {}
    displaced = moved.get("displaced_version_id")
    console.print(f"[green]promoted (200)[/]: {moved['version_id']} is now the champion of "
                  f"{moved['track']}" + (f"; {displaced} retired" if displaced else "")
                  + f" (gate {gate.get('verdict', '-')}; audit #{moved['audit_id']}, by "
                  f"{moved['actor']})")
    for reason in gate.get("reasons") or []:
        console.print(f"  - {reason}", markup=False, soft_wrap=True)
    return best


def _print_next_steps(settings: PodiumConfig, *, url: str, token: str, best: str | None,
                      serving: bool) -> None:
    api, track, auth = f"{url}/api/v1", settings.track, '-H "Authorization: Bearer $PODIUM_TOKEN"'
    console.rule("next: try it yourself", align="left")
    lines = [
        f"export PODIUM_URL={url}",
        f"export PODIUM_TOKEN={token}",
        f"curl -s {api}/tracks/{track}/champion {auth}",
        f"curl -s '{api}/versions?track={track}&state=challenger' {auth}",
        f"curl -s {api}/tracks/{track}/leaderboard {auth}",
        f"curl -s {api}/tracks/{track}/audit {auth}",
    ]
    if best:
        lines.append(f"curl -s -X POST {api}/versions/{best}/promote {auth} "
                     "-H 'Content-Type: application/json' -d '{\"reason\": \"tried by hand\"}'")
    for line in lines:
        console.print(line, markup=False, soft_wrap=True, highlight=False)
    console.print(f"the leaderboard page: {url}/", markup=False)
    if not serving:
        console.print("not serving (--no-serve): `registry serve` serves the same database "
                      "(then use its URL)", style="dim")


def _serve_until_interrupted(server: ThreadedServer, *, url: str, tick_seconds: int,
                             days: int) -> None:
    console.rule("serving", align="left")
    console.print(f"serving {url}/ and the API until Ctrl-C; the scheduled shadow job lets "
                  f"{days} market day(s) land every {tick_seconds} s and scores them")
    # Ctrl-C and SIGTERM stop it cleanly (even where SIGINT was ignored, as under `cmd &`).
    previous = {sig: signal.signal(sig, signal.default_int_handler)
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.wait()
    except KeyboardInterrupt:
        console.print("stopping: the running shadow tick finishes first …")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    server.stop()
    console.print("stopped cleanly")
