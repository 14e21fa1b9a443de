"""Mixed load: the consumers' champion endpoint while others load the page and the leaderboard.

Builds a fresh SQLite registry with one track of ``--versions`` versions (a champion and
challengers, one of them clearly better), each with ``--days`` settled shadow days, and starts
``registry serve`` on loopback. Then, for ``--seconds``:

- ``--consumers`` keep-alive connections call ``GET /api/v1/tracks/{track}/champion`` back to
  back (the hot path);
- ``--readers`` other connections alternately load the page (``GET /?track=…``) and
  ``GET /api/v1/tracks/{track}/leaderboard``, accepting gzip as browsers and HTTP clients do
  (each a fresh load: no ``If-None-Match``).

The consumers and the readers run in two processes of their own (neither the server's nor each
other's), started together, so that reading the readers' big answers never delays the timing
of a consumer's.

After that, ``--promotions`` gated promotions, each on a track of its own built the same way
(a rollback re-crowns the old champion, which then has no evidence since its return): the
leaderboard is read first, as the page's readers do, then its winner is promoted through the
gate, which judges the whole track. Prints the
champion endpoint's p50/p99 under the mixed load (and, measured just before, with its consumers
alone, so that what the readers cost stands apart from what a busy machine costs), the
leaderboard's p50, and the gated promotion's p50 (the gate judges the whole track), with the
targets beside them.

    .venv/bin/python bench/mixed_load.py [--seconds 20] [--versions 60] [--days 250]
                                         [--consumers 8] [--readers 8] [--json OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import multiprocessing.synchronize
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_load import Connection, percentile, request_bytes  # noqa: E402
from seeded_registry import SERVER_CONFIG, TRACK, make_registry, settle_days  # noqa: E402

from registry.testing import RegistryServer  # noqa: E402

TARGETS = {"champion_p99_ms": 10.0, "leaderboard_p50_ms": 50.0, "promotion_p50_ms": 100.0}


async def _drive(port: int, requests: list[bytes], until: float,
                 timings: list[float], errors: list[str]) -> None:
    connection = Connection(port)
    await connection.open()
    try:
        i = 0
        while time.perf_counter() < until:
            raw = requests[i % len(requests)]
            i += 1
            started = time.perf_counter()
            status, body = await connection.request(raw)
            elapsed = (time.perf_counter() - started) * 1000
            if status == 200:
                timings.append(elapsed)
            else:
                errors.append(f"HTTP {status}: {body[:120]!r}")
    finally:
        await connection.close()


def _client_group(port: int, requests: list[list[bytes]], seconds: float,
                  start: multiprocessing.synchronize.Barrier,
                  results: multiprocessing.Queue) -> None:
    """One process's connections (one list of requests each, sent in turn) for ``seconds``,
    from the moment every group is ready."""

    async def drive_all() -> tuple[list[float], list[str]]:
        timings: list[float] = []
        errors: list[str] = []
        until = time.perf_counter() + seconds
        await asyncio.gather(*(_drive(port, raw, until, timings, errors) for raw in requests))
        return timings, errors

    start.wait()
    results.put(asyncio.run(drive_all()))


def mixed(port: int, token: str, args: argparse.Namespace, *,
          readers: bool = True) -> dict[str, Any]:
    champion = request_bytes("GET", f"/api/v1/tracks/{TRACK}/champion", port, token)
    board = request_bytes("GET", f"/api/v1/tracks/{TRACK}/leaderboard", port, token,
                          accept_gzip=True)
    page = request_bytes("GET", f"/?track={TRACK}", port, None, accept_gzip=True)
    groups = {"champion": [[champion]] * args.consumers}
    if readers:
        groups["mixed_readers"] = [[board, page] if i % 2 else [page, board]
                                   for i in range(args.readers)]
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(len(groups))
    outcome: dict[str, Any] = {"errors": []}
    queues = {name: context.Queue() for name in groups}
    processes = {name: context.Process(target=_client_group, args=(
        port, requests, args.seconds, start, queues[name])) for name, requests in groups.items()}
    for process in processes.values():
        process.start()
    for name, process in processes.items():
        outcome[name], errors = queues[name].get(timeout=args.seconds + 300)
        outcome["errors"] += errors
        process.join()
    return outcome


async def alone(port: int, raw: bytes, n: int) -> list[float]:
    """``raw`` sent ``n`` times on one connection, nothing else running."""
    timings: list[float] = []
    connection = Connection(port)
    await connection.open()
    try:
        for _ in range(n):
            started = time.perf_counter()
            status, body = await connection.request(raw)
            if status != 200:
                raise RuntimeError(f"answered {status}: {body[:200]!r}")
            timings.append((time.perf_counter() - started) * 1000)
    finally:
        await connection.close()
    return timings


async def promotions(port: int, token: str, read_token: str,
                     tracks: list[str]) -> tuple[list[float], list[str]]:
    """On each track: read the leaderboard (as the page's readers do), then promote its winner
    through the gate, timed."""
    connection = Connection(port)
    await connection.open()
    timings: list[float] = []
    verdicts: list[str] = []
    try:
        for track in tracks:
            status, answer = await connection.request(request_bytes(
                "GET", f"/api/v1/tracks/{track}/leaderboard", port, read_token))
            better = json.loads(answer)["winner"] if status == 200 else None
            if better is None:
                raise RuntimeError(f"no winner to promote on {track}: {answer[:400]!r}")
            raw = request_bytes("POST", f"/api/v1/versions/{better}/promote", port, token,
                                {"reason": "bench: better net", "force": False})
            started = time.perf_counter()
            status, answer = await connection.request(raw)
            timings.append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise RuntimeError(f"promote answered {status}: {answer[:400]!r}")
            verdicts.append(json.loads(answer)["gate"]["verdict"])
    finally:
        await connection.close()
    return timings, verdicts


def seed_track(registry: Any, track: str, versions: int, days: int, seed: int) -> None:
    """A champion, one clearly better challenger and ordinary ones, each with ``days`` days."""
    champion = (registry.champion if track == TRACK
                else registry.register("v1-linear", track=track, champion=True))
    challengers = [registry.register(f"v{i}-mlp", track=track) for i in range(2, versions + 1)]
    settle_days(registry, {champion: 0.0, challengers[0]: 0.02,
                           **{v: 0.0005 * (i % 5) for i, v in enumerate(challengers[1:])}},
                days, seed=seed)


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="podium-mixed-") as tmp:
        root = Path(tmp)
        registry = make_registry(root)
        tracks = [f"promote-{k}" for k in range(args.promotions)]
        for seed, track in enumerate([TRACK, *tracks]):
            seed_track(registry, track, args.versions, args.days, seed)
        config = {**SERVER_CONFIG, "server": {"public_reads": True}}
        with RegistryServer(database_url=registry.database_url,
                            artefacts_root=registry.artefacts_root, workdir=root,
                            config=config) as server:
            port = server.port
            board = request_bytes("GET", f"/api/v1/tracks/{TRACK}/leaderboard", port,
                                  registry.read_token, accept_gzip=True)
            page = request_bytes("GET", f"/?track={TRACK}", port, None, accept_gzip=True)
            # computed once per change of the evidence: the first reads after seeding
            cold = asyncio.run(alone(port, board, 1))[0]
            cold_page = asyncio.run(alone(port, page, 1))[0]
            # the same consumers with no readers: what this machine gives the hot path now
            baseline = mixed(port, registry.read_token, args, readers=False)["champion"]
            loaded = mixed(port, registry.read_token, args)
            board_ms = asyncio.run(alone(port, board, 50))
            promote_ms, verdicts = asyncio.run(promotions(
                port, registry.promote_token, registry.read_token, tracks))
        registry.engine.dispose()
    champion, baseline = sorted(loaded["champion"]), sorted(baseline)
    return {
        "versions": args.versions, "days": args.days, "seconds": args.seconds,
        "consumers": args.consumers, "readers": args.readers,
        "champion_requests": len(champion), "reader_requests": len(loaded["mixed_readers"]),
        "errors": len(loaded["errors"]), "error_samples": sorted(set(loaded["errors"]))[:3],
        "champion_alone_p50_ms": percentile(baseline, 50),
        "champion_alone_p99_ms": percentile(baseline, 99),
        "champion_p50_ms": percentile(champion, 50), "champion_p99_ms": percentile(champion, 99),
        "leaderboard_cold_ms": cold, "page_cold_ms": cold_page,
        "leaderboard_p50_ms": statistics.median(board_ms),
        "page_or_leaderboard_p50_under_load_ms": percentile(sorted(loaded["mixed_readers"]), 50),
        "promotion_p50_ms": statistics.median(promote_ms),
        "promotion_verdicts": sorted(set(verdicts)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--versions", type=int, default=60)
    parser.add_argument("--days", type=int, default=250)
    parser.add_argument("--consumers", type=int, default=8)
    parser.add_argument("--readers", type=int, default=8)
    parser.add_argument("--promotions", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = run(args)
    for key, value in result.items():
        target = TARGETS.get(key)
        shown = f"{value:.1f}" if isinstance(value, float) else value
        print(f"{key:40} {shown}" + (f"   (target <= {target:g})" if target else ""))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
