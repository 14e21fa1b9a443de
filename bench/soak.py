"""Soak: consumers resolve the champion at full speed while promotions and rollbacks land.

Starts ``registry serve`` (uvicorn) on loopback against a fresh SQLite registry in a temporary
directory, or against ``--database-url`` (PostgreSQL, say: the schema is migrated, and a fresh
track and fresh tokens are made, so an existing registry's data is left alone). It registers
challengers with small sealed bundles and crowns a first champion. Then, for ``--seconds``:

- ``--consumers`` threads each call ``GET /api/v1/tracks/{track}/champion`` in a loop, over a
  keep-alive connection, as fast as the server answers;
- a promoter, every ``--interval`` seconds, alternately promotes a fresh challenger (forced,
  with ``expected_champion``) and rolls the track back.

Every consumer request is timed (start, end) and so is every transition (sent, answered).
**Read-your-writes**: a consumer request that starts after a transition's answer came back must
see that transition's champion, or the champion of a transition sent before the request ended;
anything older is a *stale read*. An *error* is any answer but a 200, or no answer. At the end
the server's champion must be the last transition's. Prints a table; exits 1 on any error or
stale read.

    .venv/bin/python bench/soak.py [--seconds 60] [--interval 2] [--consumers 4]
                                   [--database-url URL] [--json OUT]

The figures depend on the machine and on what else runs on it: read them as a soak's, not as a
benchmark's (``bench/resolve.py`` measures the hot path).
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import secrets
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from registry import migrations
from registry.auth import create_token
from registry.db import make_engine, write_session
from registry.testing import RegistryServer, register_stand_in

API = "/api/v1"


@dataclass
class Transition:
    action: str  # promote | rollback
    sent: float
    answered: float
    champion: str  # the champion its answer names


@dataclass
class Read:
    start: float
    end: float
    status: int  # 0: no answer
    champion: str | None
    error: str | None = None


@dataclass
class Soak:
    database: str
    seconds: float
    consumers: int
    reads: list[Read] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    promoter_errors: list[str] = field(default_factory=list)
    final_champion: str | None = None
    first_champion: str = ""


# --------------------------------------------------------------------------- set-up


def prepare(database_url: str, artefacts_root: Path, track: str,
            challengers: int) -> tuple[dict[str, str], list[str]]:
    """Migrate, make a read and an admin token, register ``challengers`` versions."""
    engine = make_engine(database_url)
    try:
        migrations.upgrade(engine)
        suffix = secrets.token_hex(4)
        with write_session(engine) as session:
            tokens = {scope: create_token(session, name=f"soak-{scope}-{suffix}",
                                          scope=scope)[1] for scope in ("read", "admin")}
        versions = [register_stand_in(engine, artefacts_root, f"soak{k}", track=track,
                                      actor="soak") for k in range(challengers)]
    finally:
        engine.dispose()
    return tokens, versions


# --------------------------------------------------------------------------- the soak


def consume(url: str, token: str, track: str, until: float, out: list[Read]) -> None:
    path = f"{API}/tracks/{track}/champion"
    with httpx.Client(base_url=url, timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as http:
        while (start := time.monotonic()) < until:
            try:
                response = http.get(path)
                end = time.monotonic()
                if response.status_code == 200:
                    out.append(Read(start, end, 200, response.json()["version_id"]))
                else:
                    out.append(Read(start, end, response.status_code, None,
                                    response.text[:200]))
            except httpx.HTTPError as exc:
                out.append(Read(start, time.monotonic(), 0, None,
                                f"{type(exc).__name__}: {exc}"[:200]))


def promote_and_roll_back(url: str, token: str, track: str, challengers: list[str],
                          soak: Soak, *, until: float, interval: float) -> None:
    champion = soak.first_champion
    with httpx.Client(base_url=url, timeout=60,
                      headers={"Authorization": f"Bearer {token}"}) as http:
        beat = 0
        while True:
            beat += 1
            due = until - soak.seconds + beat * interval
            if due >= until - min(interval / 2, 0.5):
                return
            time.sleep(max(0.0, due - time.monotonic()))
            promote = beat % 2 == 1
            if promote and not challengers:
                soak.promoter_errors.append("ran out of challengers")
                return
            sent = time.monotonic()
            try:
                if promote:
                    response = http.post(f"{API}/versions/{challengers.pop()}/promote",
                                         json={"reason": "soak", "force": True,
                                               "expected_champion": champion})
                else:
                    response = http.post(f"{API}/tracks/{track}/rollback",
                                         json={"reason": "soak", "expected_champion": champion})
            except httpx.HTTPError as exc:
                soak.promoter_errors.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            answered = time.monotonic()
            if response.status_code != 200:
                soak.promoter_errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
                continue
            champion = response.json()["version"]["version_id"]
            soak.transitions.append(Transition("promote" if promote else "rollback", sent,
                                               answered, champion))


def stale_reads(soak: Soak) -> list[Read]:
    """Reads that started after a transition was answered and still saw an older champion."""
    transitions = [Transition("first", float("-inf"), float("-inf"), soak.first_champion),
                   *soak.transitions]
    answered = [t.answered for t in transitions]
    stale = []
    for read in soak.reads:
        if read.status != 200:
            continue
        last = bisect.bisect_right(answered, read.start) - 1
        allowed = {transitions[last].champion}
        allowed.update(t.champion for t in transitions[last + 1:] if t.sent <= read.end)
        if read.champion not in allowed:
            stale.append(read)
    return stale


def run_soak(database_url: str | None, *, seconds: float, interval: float,
             consumers: int) -> tuple[Soak, dict[str, Any]]:
    workdir = Path(tempfile.mkdtemp(prefix="podium-soak-"))
    artefacts_root = workdir / "artefacts"
    url_for_db = database_url or f"sqlite:///{workdir / 'podium.db'}"
    track = f"soak-{secrets.token_hex(4)}"
    transitions_planned = int(seconds / interval) + 1
    server = RegistryServer(database_url=url_for_db, artefacts_root=artefacts_root,
                            workdir=workdir, config={"server": {"public_reads": False},
                                                     "shadow": {"in_serve": False}})
    try:
        tokens, challengers = prepare(url_for_db, artefacts_root, track,
                                      transitions_planned // 2 + 3)
        server.start(healthy=True)
        url = server.url
        soak = Soak(database=url_for_db.split(":", 1)[0].split("+", 1)[0], seconds=seconds,
                    consumers=consumers)
        with httpx.Client(base_url=url, timeout=60,
                          headers={"Authorization": f"Bearer {tokens['admin']}"}) as http:
            first = http.post(f"{API}/versions/{challengers.pop()}/promote",
                              json={"reason": "soak: first champion", "force": True,
                                    "expected_champion": ""})
            first.raise_for_status()
            soak.first_champion = first.json()["version"]["version_id"]
            http.get(f"{API}/tracks/{track}/champion").raise_for_status()  # warm
        started = time.monotonic()
        until = started + seconds
        per_thread: list[list[Read]] = [[] for _ in range(consumers)]
        threads = [threading.Thread(target=consume, args=(url, tokens["read"], track, until,
                                                           out), daemon=True)
                   for out in per_thread]
        for thread in threads:
            thread.start()
        promote_and_roll_back(url, tokens["admin"], track, challengers, soak, until=until,
                              interval=interval)
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        soak.reads = sorted((r for out in per_thread for r in out), key=lambda r: r.start)
        with httpx.Client(base_url=url, timeout=60,
                          headers={"Authorization": f"Bearer {tokens['read']}"}) as http:
            final = http.get(f"{API}/tracks/{track}/champion")
            soak.final_champion = final.json().get("version_id") if final.status_code == 200 \
                else None
        server_errors = [line for line in server.log().splitlines()
                         if "ERROR" in line or "Traceback" in line]
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return soak, figures(soak, elapsed, server_errors)


def _percentile(values: list[float], q: float) -> float:
    """Nearest rank (NumPy's ``inverted_cdf``); NaN when there are no values."""
    return float(np.percentile(values, q, method="inverted_cdf")) if values else math.nan


def figures(soak: Soak, elapsed: float, server_errors: list[str]) -> dict[str, Any]:
    ok = sorted((r.end - r.start) * 1000 for r in soak.reads if r.status == 200)
    failed = [r for r in soak.reads if r.status != 200]
    stale = stale_reads(soak)
    expected_final = soak.transitions[-1].champion if soak.transitions else soak.first_champion
    moves = sorted((t.answered - t.sent) * 1000 for t in soak.transitions)
    return {
        "database": soak.database, "seconds": round(elapsed, 2), "consumers": soak.consumers,
        "requests": len(soak.reads), "throughput_rps": round(len(soak.reads) / elapsed, 1),
        "p50_ms": round(_percentile(ok, 50), 2), "p99_ms": round(_percentile(ok, 99), 2),
        "max_ms": round(ok[-1], 2) if ok else None,
        "promotions": sum(t.action == "promote" for t in soak.transitions),
        "rollbacks": sum(t.action == "rollback" for t in soak.transitions),
        "transition_p50_ms": round(_percentile(moves, 50), 2),
        "transition_max_ms": round(moves[-1], 2) if moves else None,
        "errors": len(failed) + len(soak.promoter_errors),
        "stale_reads": len(stale),
        "final_champion_agrees": soak.final_champion == expected_final,
        "server_log_errors": len(server_errors),
        "first_errors": ([r.error or f"HTTP {r.status}" for r in failed[:3]]
                         + soak.promoter_errors[:3] + server_errors[:3]),
        "first_stale": [{"start": r.start, "saw": r.champion} for r in stale[:3]],
    }


def passed(result: dict[str, Any]) -> bool:
    return (result["errors"] == 0 and result["stale_reads"] == 0
            and result["final_champion_agrees"] and result["server_log_errors"] == 0
            and result["promotions"] > 0 and result["requests"] > 0)


def show(result: dict[str, Any], console: Console) -> None:
    table = Table(title=f"soak · {result['database']} · {result['consumers']} consumers · "
                  f"{result['seconds']:.0f} s")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("consumer requests", f"{result['requests']:,}"),
        ("throughput", f"{result['throughput_rps']:,.0f} req/s"),
        ("latency p50 / p99 / max", f"{result['p50_ms']:.2f} / {result['p99_ms']:.2f} / "
                                    f"{result['max_ms'] or float('nan'):.2f} ms"),
        ("promotions / rollbacks", f"{result['promotions']} / {result['rollbacks']}"),
        ("transition p50 / max", f"{result['transition_p50_ms']:.1f} / "
                                 f"{result['transition_max_ms'] or float('nan'):.1f} ms"),
        ("errors", str(result["errors"])),
        ("stale reads (read-your-writes)", str(result["stale_reads"])),
        ("final champion agrees", "yes" if result["final_champion_agrees"] else "NO"),
        ("errors in the server's log", str(result["server_log_errors"])),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    for line in result["first_errors"]:
        console.print(f"[red]error:[/] {line}", markup=True, highlight=False)
    for item in result["first_stale"]:
        console.print(f"[red]stale read:[/] saw {item['saw']}", markup=True, highlight=False)
    console.print("[green]PASS[/]" if passed(result) else "[red]FAIL[/]")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long (default 60)")
    parser.add_argument("--interval", type=float, default=2.0,
                        help="seconds between transitions (default 2)")
    parser.add_argument("--consumers", type=int, default=4, help="consumer threads (default 4)")
    parser.add_argument("--database-url", help="default: a fresh SQLite file in a temp dir")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.interval <= 0 or args.consumers < 1:
        parser.error("--seconds and --interval must be positive, --consumers at least 1")
    try:
        _, result = run_soak(args.database_url, seconds=args.seconds, interval=args.interval,
                             consumers=args.consumers)
    except RuntimeError as exc:  # the server did not start
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    show(result, Console())
    return 0 if passed(result) else 1


if __name__ == "__main__":
    raise SystemExit(main())
