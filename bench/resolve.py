"""The consumers' hot path, resolving a track's champion, against a bare handler and MLflow.

Starts, on this machine and in one run, every server below, then drives them in turn with the
same client (raw HTTP/1.1 on keep-alive connections from one asyncio loop: the lightest client
Python allows, so that the server, not the client, is what is measured) at 1, 8 and 32
concurrent clients, interleaved in rounds so that a change in the machine's load falls on all
of them alike:

- **podium**: ``registry serve`` as shipped (one process, its default log level) on a fresh,
  migrated SQLite registry in a temporary directory, with a read token and a champion:
  ``GET /api/v1/tracks/{track}/champion``;
- **bare**: a FastAPI handler returning a constant, on the same uvicorn settings as
  ``registry serve``: the ceiling of this stack;
- **mlflow** and **mlflow-w1**: MLflow's registry REST server on SQLite from its own virtual
  environment, with its default 4 workers and with 1:
  ``GET /api/2.0/mlflow/registered-models/alias``; started and stopped (by PID) with the shared
  baseline harness (``shared/bench/mlflow_baseline/run_baseline.py``).

Then, on Podium: promotion latency over promote/rollback cycles through the real gate (no
force; each cycle on a track of its own, where a clearly better challenger has 120 paired
shadow days beside the champion); the time from starting ``registry serve`` to
``/api/v1/health`` answering 200; the idle RSS of its whole process tree. It prints one report
with the ratios and the targets; ``--json`` keeps every figure.

    .venv/bin/python bench/resolve.py            # the full run, about 4 minutes
    .venv/bin/python bench/resolve.py --quick    # short, for development
    .venv/bin/python bench/resolve.py --no-mlflow --seconds 3 --clients 1 8

MLflow is expected in ``var/bench/mlflow-venv`` (``python3 -m venv var/bench/mlflow-venv &&
var/bench/mlflow-venv/bin/pip install "mlflow>=3,<4" httpx``); it is never a dependency of
Podium. The harness is looked for in ``../shared/bench/mlflow_baseline`` (``--harness``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import json
import math
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
HARNESS = REPO.parent / "shared" / "bench" / "mlflow_baseline"
MLFLOW_VENV = REPO / "var" / "bench" / "mlflow-venv"
TRACK = "equities-daily"
CONSTANT = json.dumps({"version_id": "v1-linear-20250630-00000000", "track": TRACK,
                       "bundle_path": "models/equities-daily/v1-linear-20250630-00000000",
                       "bundle_digest": "0" * 64,
                       "champion_since": "2025-07-01T00:00:00Z"}).encode()
# what `registry serve` passes to uvicorn.run; the bare server uses the same
UVICORN_OPTIONS = {"host": "127.0.0.1", "access_log": False, "server_header": False}
TARGETS = {"vs_mlflow": 4.0, "vs_bare": 0.6, "p99_ms_at_8": 10.0, "idle_rss_mib": 350.0,
           "startup_s": 2.0}


# --------------------------------------------------------------------------- the client
class Connection:
    """One keep-alive HTTP/1.1 connection: a request is written in one go, the answer read by
    its Content-Length (or chunks)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
            self.writer = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, chunked = None, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            body = b""
            while size := int((await self.reader.readuntil(b"\r\n")).strip(), 16):
                body += (await self.reader.readexactly(size + 2))[:-2]
            await self.reader.readuntil(b"\r\n")
        else:
            body = await self.reader.readexactly(length or 0)
        return status, body


def request_bytes(method: str, path: str, port: int, token: str | None,
                  body: dict | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Accept: application/json"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    payload = b""
    if body is not None:
        payload = json.dumps(body).encode()
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest rank, as the shared harness takes it."""
    if not sorted_values:
        return None
    return sorted_values[max(1, math.ceil(p / 100 * len(sorted_values))) - 1]


async def load(port: int, raw: bytes, expect: bytes, *, clients: int, seconds: float,
               warmup: float, server_pid: int) -> dict[str, Any]:
    """``clients`` connections each send ``raw`` back to back for ``seconds`` (after
    ``warmup``); an answer counts when it is a 200 whose body contains ``expect``. Also the CPU
    time of the client and of the server's process tree over the measured window."""
    connections = [Connection(port) for _ in range(clients)]
    await asyncio.gather(*(c.open() for c in connections))
    latencies: list[float] = []
    errors: list[str] = []

    async def drive(connection: Connection, until: float, keep: bool) -> None:
        while (started := time.perf_counter()) < until:
            try:
                status, body = await connection.request(raw)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                errors.append(type(exc).__name__)
                await connection.close()
                continue
            elapsed = time.perf_counter() - started
            if not keep:
                continue
            if status == 200 and expect in body:
                latencies.append(elapsed)
            else:
                errors.append(f"HTTP {status}: {body[:120]!r}")

    ticks = harness().cpu_ticks
    try:
        await asyncio.gather(*(drive(c, time.perf_counter() + warmup, False)
                               for c in connections))
        cpu, server_cpu, started = time.process_time(), ticks(server_pid), time.perf_counter()
        await asyncio.gather(*(drive(c, started + seconds, True) for c in connections))
        wall = time.perf_counter() - started
        cpu, server_cpu = time.process_time() - cpu, ticks(server_pid) - server_cpu
    finally:
        await asyncio.gather(*(c.close() for c in connections))
    return {"latencies": latencies, "errors": errors, "wall_s": wall, "client_cpu_s": cpu,
            "server_cpu_s": server_cpu / os.sysconf("SC_CLK_TCK")}


def summarize(clients: int, slices: list[dict[str, Any]]) -> dict[str, Any]:
    """One figure per client count from the slices of every round."""
    ms = sorted(x * 1000 for part in slices for x in part["latencies"])
    errors = [e for part in slices for e in part["errors"]]
    wall = sum(part["wall_s"] for part in slices)
    return {"clients": clients, "ok": len(ms), "errors": len(errors),
            "error_samples": sorted(set(errors))[:3], "wall_s": round(wall, 3),
            "rps": len(ms) / wall, "p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99),
            "client_cpu": sum(part["client_cpu_s"] for part in slices) / wall,
            "server_cpu_ms_per_request": 1000 * sum(part["server_cpu_s"] for part in slices)
            / max(len(ms), 1)}


# --------------------------------------------------------------------------- servers
def harness():
    """The shared baseline harness (start/stop by PID, /proc memory), imported from its folder."""
    folder = Path(os.environ.get("PODIUM_BENCH_HARNESS", HARNESS))
    if not (folder / "run_baseline.py").is_file():
        sys.exit(f"the shared MLflow baseline harness is not at {folder} (--harness)")
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    import run_baseline

    return run_baseline


@dataclass
class Started:
    name: str
    process: Any
    port: int
    startup_s: float
    workdir: Path
    memory: dict[str, Any] = field(default_factory=dict)


def start_server(name: str, cmd: list[str], *, workdir: Path, port: int, health: str,
                 settle_s: float | None) -> Started:
    """Start ``cmd`` as the harness does (its own session; MLflow's telemetry off) and time it
    to the first 200 from ``health``; then, if asked, let it settle and take its memory."""
    h = harness()
    process, up_s = h.start(cmd, str(workdir), f"http://127.0.0.1:{port}{health}",
                            str(workdir / f"{name}.log"))
    server = Started(name, process, port, up_s, workdir)
    if settle_s is not None:
        h.settle(process.pid, min_s=settle_s, max_s=max(settle_s, 20.0))
        server.memory = h.memory(process.pid)
    return server


def stop_server(server: Started) -> None:
    harness().stop(server.process)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_bare(port: int, log_level: str) -> None:
    """The ceiling: the same FastAPI and uvicorn, one handler returning a constant."""
    import uvicorn
    from fastapi import FastAPI, Response

    app = FastAPI()

    @app.get("/api/v1/tracks/{track}/champion")
    async def champion(track: str) -> Response:
        return Response(CONSTANT, media_type="application/json")

    @app.get("/api/v1/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    uvicorn.run(app, port=port, log_level=log_level, **UVICORN_OPTIONS)


# --------------------------------------------------------------------------- Podium set-up
@dataclass
class Registry:
    root: Path
    config: Path
    engine: Any
    read_token: str
    promote_token: str
    champion: str


def make_bundle(artefacts_root: Path, label: str, track: str) -> tuple[str, str]:
    from registry.ids import build_version_id
    from trainer.checksums import write_sha256sums

    fingerprint = hashlib.sha256(uuid.uuid4().bytes).hexdigest()
    version_id = build_version_id(label, dt.date(2025, 6, 30), fingerprint)
    bundle = artefacts_root / "models" / track / version_id
    (bundle / "checkpoint").mkdir(parents=True)
    (bundle / "checkpoint" / "weights.bin").write_bytes(os.urandom(4096))
    (bundle / "metadata.json").write_text(json.dumps({"version_id": version_id}) + "\n")
    write_sha256sums(bundle)
    return version_id, fingerprint


def register(registry: Registry, label: str, *, track: str = TRACK,
             champion: bool = False) -> str:
    """A challenger (through ``registry.store``, bundle verified), promoted by force if
    ``champion``."""
    from registry import promotion, store
    from registry.db import write_session

    artefacts = registry.root / "artefacts"
    version_id, fingerprint = make_bundle(artefacts, label, track)
    with write_session(registry.engine) as session:
        store.register_version(session, track=track, version_id=version_id,
                               fingerprint=fingerprint, artefacts_root=artefacts, actor="bench")
    if champion:
        with write_session(registry.engine) as session:
            promotion.promote_version(session, version_id=version_id, actor="bench",
                                      reason="first champion", gate=None, force=True,
                                      artefacts_root=artefacts)
    return version_id


def make_registry(root: Path) -> Registry:
    """A fresh SQLite registry: migrated, tokens created, a champion registered and promoted."""
    from registry import migrations
    from registry.auth import create_token
    from registry.db import make_engine, write_session

    (root / "artefacts").mkdir(parents=True)
    config = root / "podium.yaml"
    # the scheduled shadow job starts with the server (the default) but never fires mid-bench
    config.write_text(f"database:\n  url: sqlite:///{root / 'podium.db'}\n"
                      f"artefacts_root: {root / 'artefacts'}\n"
                      "shadow:\n  schedule: '0 0 1 1 *'\n")
    engine = make_engine(f"sqlite:///{root / 'podium.db'}")
    migrations.upgrade(engine)
    with write_session(engine) as session:
        _, read_token = create_token(session, name="consumer", scope="read")
        _, promote_token = create_token(session, name="promoter", scope="promote")
    registry = Registry(root, config, engine, read_token, promote_token, "")
    registry.champion = register(registry, "v1-linear", champion=True)
    return registry


def settle_days(registry: Registry, means: dict[str, float], days: int, seed: int) -> None:
    """``days`` settled shadow days for each version from 2025-07-01 (mean daily net, sd 1 %)."""
    import numpy as np

    from registry.db import write_session
    from registry.models import ShadowScore

    rng = np.random.default_rng(seed)
    first = dt.date(2025, 7, 1)
    with write_session(registry.engine) as session:
        for version_id, mean in means.items():
            for i, net in enumerate(rng.normal(mean, 0.01, days)):
                session.add(ShadowScore(
                    version_id=version_id, day=first + dt.timedelta(days=i),
                    gross=float(net) + 1e-4, turnover=0.2, cost=1e-4, net=float(net),
                    rank_ic=0.05, n_assets=100))
        session.commit()


async def promotion_cycles(registry: Registry, port: int, cycles: int,
                           days: int) -> dict[str, Any]:
    """Promote a clearly better challenger through the gate, then roll back; ``cycles`` times.

    Each cycle has a track of its own (a champion and one challenger with ``days`` paired
    shadow days), so every promotion faces the same gate: one trial, the same evidence.
    """
    connection = Connection(port)
    promote_ms: list[float] = []
    rollback_ms: list[float] = []
    verdicts: set[str] = set()
    cold = (math.nan, math.nan)
    try:
        for cycle in range(cycles + 1):  # cycle 0 is the cold one (the gate's first imports)
            track = f"promote-{cycle}"
            champion = register(registry, "v1-linear", track=track, champion=True)
            challenger = register(registry, "v2-mlp", track=track)
            settle_days(registry, {champion: 0.0, challenger: 0.01}, days, cycle)
            timings = []
            for path, body in ((f"/api/v1/versions/{challenger}/promote",
                                {"reason": "bench: better net", "force": False}),
                               (f"/api/v1/tracks/{track}/rollback", {"reason": "bench: back"})):
                raw = request_bytes("POST", path, port, registry.promote_token, body)
                started = time.perf_counter()
                status, answer = await connection.request(raw)
                timings.append((time.perf_counter() - started) * 1000)
                if status != 200:
                    raise RuntimeError(f"POST {path} answered {status}: {answer[:400]!r}")
                if not timings[1:]:  # the promotion's answer carries the gate's report
                    verdicts.add(json.loads(answer)["gate"]["verdict"])
            if cycle == 0:
                cold = (timings[0], timings[1])
            else:
                promote_ms.append(timings[0])
                rollback_ms.append(timings[1])
    finally:
        await connection.close()
    promote_ms.sort()
    rollback_ms.sort()
    return {"cycles": cycles, "paired_days": days, "verdicts": sorted(verdicts),
            "cold_promote_ms": cold[0], "cold_rollback_ms": cold[1],
            "promote_p50_ms": statistics.median(promote_ms),
            "promote_p99_ms": percentile(promote_ms, 99),
            "rollback_p50_ms": statistics.median(rollback_ms),
            "rollback_p99_ms": percentile(rollback_ms, 99)}


# --------------------------------------------------------------------------- MLflow set-up
def mlflow_champion(port: int) -> tuple[str, str]:
    """A registered model with one version aliased ``champion``: ``(path, version)``."""
    harness()
    from bench_registry import MlflowAdapter

    model = f"bench-{uuid.uuid4().hex[:8]}"

    async def setup() -> str:
        async with MlflowAdapter(f"http://127.0.0.1:{port}") as adapter:
            await adapter.create_model(model)
            version = await adapter.create_version(model, f"s3://bench-bucket/{model}/v1")
            await adapter.set_alias(model, "champion", version)
            return version

    version = asyncio.run(setup())
    return f"/api/2.0/mlflow/registered-models/alias?name={model}&alias=champion", version


# --------------------------------------------------------------------------- the run
@dataclass
class Contender:
    server: Started
    raw: bytes
    expect: bytes


def measure_all(contenders: dict[str, Contender], args: argparse.Namespace) -> dict[str, Any]:
    """Every server at every client count, interleaved in ``args.rounds`` rounds so that a
    change in the machine's load falls on all of them alike."""
    slices: dict[str, dict[int, list]] = {name: {c: [] for c in args.clients}
                                          for name in contenders}
    seconds = args.seconds / args.rounds

    async def rounds() -> None:
        for _ in range(args.rounds):
            for clients in args.clients:
                for name, contender in contenders.items():
                    slices[name][clients].append(await load(
                        contender.server.port, contender.raw, contender.expect,
                        clients=clients, seconds=seconds, warmup=args.warmup,
                        server_pid=contender.server.process.pid))

    asyncio.run(rounds())
    return {name: [summarize(c, slices[name][c]) for c in args.clients] for name in contenders}


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"startup": {}, "memory": {}, "machine": {
        "cpus": os.cpu_count(), "load_avg": os.getloadavg(), "python": sys.version.split()[0]},
        "params": {k: str(v) for k, v in vars(args).items()}}
    root = Path(tempfile.mkdtemp(prefix="podium-resolve-"))
    registry_bin = str(Path(sys.executable).parent / "registry")
    contenders: dict[str, Contender] = {}
    registry = None
    try:
        # Podium first, alone on the machine: start-up (fresh processes on the same registry)
        # and idle memory; the last one started stays up
        registry = make_registry(root / "podium")
        cmd = [registry_bin, "serve", "--config", str(registry.config), "--log-level",
               args.log_level]
        startups = []
        for attempt in range(args.startups):
            port = free_port()
            server = start_server("podium", [*cmd, "--port", str(port)], workdir=root,
                                  port=port, health="/api/v1/health",
                                  settle_s=args.settle if attempt == 0 else None)
            startups.append(server.startup_s)
            if attempt == 0:
                results["memory"]["podium"] = server.memory
            if attempt < args.startups - 1:
                stop_server(server)
        results["startup"]["podium"] = startups
        contenders["podium"] = Contender(server, request_bytes(
            "GET", f"/api/v1/tracks/{TRACK}/champion", port, registry.read_token),
            registry.champion.encode())
        print(f"podium: start-up to healthy {', '.join(f'{s:.2f}' for s in startups)} s; idle "
              f"RSS {results['memory']['podium']['rss_total_mib']:.0f} MiB", flush=True)

        # the bare handler on the same stack
        port = free_port()
        server = start_server("bare", [sys.executable, __file__, "--serve-bare", str(port),
                                       "--log-level", args.log_level],
                              workdir=root, port=port, health="/api/v1/health",
                              settle_s=args.settle)
        results["startup"]["bare"] = [server.startup_s]
        results["memory"]["bare"] = server.memory
        contenders["bare"] = Contender(server, request_bytes(
            "GET", f"/api/v1/tracks/{TRACK}/champion", port, registry.read_token),
            b"version_id")

        # MLflow, from its own virtual environment, as the shared harness starts it
        h = harness()
        for workers in args.mlflow_workers:
            name = "mlflow" if workers == 4 else f"mlflow-w{workers}"
            data = root / name
            data.mkdir()
            port = free_port()
            mlflow_cmd = h.MLFLOW_CMD.format(venv=args.mlflow_venv, data=data, port=port)
            if workers != 4:
                mlflow_cmd += f" --workers {workers}"
            server = start_server(name, shlex.split(mlflow_cmd), workdir=data, port=port,
                                  health="/health", settle_s=max(args.settle, 5.0))
            results["startup"][name] = [server.startup_s]
            results["memory"][name] = server.memory
            contenders[name] = Contender(server, b"", b"")  # stopped below if set-up fails
            path, version = mlflow_champion(port)
            contenders[name] = Contender(server, request_bytes(
                "GET", path, port, registry.read_token), f'"version": "{version}"'.encode())
            print(f"{name}: start-up to healthy {server.startup_s:.2f} s", flush=True)

        print(f"resolving: {len(contenders)} servers x {args.clients} clients, "
              f"{args.seconds:g} s each in {args.rounds} round(s)", flush=True)
        results["loads"] = measure_all(contenders, args)
        podium = contenders["podium"].server
        results["promotion"] = asyncio.run(promotion_cycles(
            registry, podium.port, args.promotions, args.days))
        results["memory"]["podium_after"] = h.memory(podium.process.pid)
    finally:
        for contender in contenders.values():
            stop_server(contender.server)
        if registry is not None:
            registry.engine.dispose()
        shutil.rmtree(root, ignore_errors=True)
    return results


# --------------------------------------------------------------------------- the report
def report(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    loads = results["loads"]
    mlflows = [name for name in loads if name.startswith("mlflow")]
    levels = [row["clients"] for row in loads["podium"]]
    table = Table(title="Resolve the champion (keep-alive, one client for all; ratios are of "
                  "req/s)", title_justify="left", header_style="bold")
    for column in ("clients", "server", "req/s", "p50 ms", "p99 ms", "server CPU ms/req",
                   "errors"):
        table.add_column(column, justify="left" if column == "server" else "right")
    if mlflows:
        table.add_column("podium ÷ mlflow best\n(target ≥ 4)", justify="right")
    table.add_column("podium ÷ bare\n(target ≥ 0.6)", justify="right")
    verdicts: list[tuple[str, bool]] = []
    for i, clients in enumerate(levels):
        podium = loads["podium"][i]["rps"]
        for name in loads:
            r = loads[name][i]
            row = [str(clients) if name == "podium" else "", name, f"{r['rps']:,.0f}",
                   f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}",
                   f"{r['server_cpu_ms_per_request']:.3f}", str(r["errors"])]
            if name == "podium":
                if mlflows:
                    best = max(loads[m][i]["rps"] for m in mlflows)
                    ok = podium / best >= TARGETS["vs_mlflow"]
                    row.append(_mark(podium / best, ok))
                    verdicts.append((f"{clients} clients: podium ÷ mlflow best ≥ 4", ok))
                ratio = podium / loads["bare"][i]["rps"]
                row.append(_mark(ratio, ratio >= TARGETS["vs_bare"]))
                verdicts.append((f"{clients} clients: podium ÷ bare ≥ 0.6",
                                 ratio >= TARGETS["vs_bare"]))
            else:
                row += [""] * (2 if mlflows else 1)
            table.add_row(*row, end_section=name == list(loads)[-1])
    if mlflows:
        top_podium = max(r["rps"] for r in loads["podium"])
        top_mlflow = max(r["rps"] for name in mlflows for r in loads[name])
        ok = top_podium / top_mlflow >= TARGETS["vs_mlflow"]
        table.add_row("best", "podium · mlflow", f"{top_podium:,.0f} · {top_mlflow:,.0f}",
                      "", "", "", "", _mark(top_podium / top_mlflow, ok), "")
        verdicts.append(("best podium ÷ best mlflow ≥ 4", ok))
    console = Console(width=max(120, Console().width))
    console.print(table)

    other = Table(title="Podium: promotion, start-up, memory", title_justify="left",
                  header_style="bold")
    for column in ("what", "value", "target"):
        other.add_column(column)
    if 8 in levels:
        p99 = loads["podium"][levels.index(8)]["p99_ms"]
        ok = p99 <= TARGETS["p99_ms_at_8"]
        other.add_row("resolve p99 at 8 clients", f"{p99:.2f} ms", _target(ok, "≤ 10 ms"))
        verdicts.append(("p99 ≤ 10 ms at 8 clients", ok))
    promo = results.get("promotion")
    if promo:
        other.add_row(f"promote, real gate ({', '.join(promo['verdicts'])}), "
                      f"{promo['cycles']} cycles",
                      f"p50 {promo['promote_p50_ms']:.1f} · p99 {promo['promote_p99_ms']:.1f} ms"
                      f" (first, cold {promo['cold_promote_ms']:.0f} ms)", "-")
        other.add_row("rollback", f"p50 {promo['rollback_p50_ms']:.1f} · p99 "
                      f"{promo['rollback_p99_ms']:.1f} ms", "-")
    startup = results["startup"]["podium"]
    median_startup = statistics.median(startup)
    other.add_row("start-up to /api/v1/health 200 (median)", f"{median_startup:.2f} s (runs: "
                  + ", ".join(f"{s:.2f}" for s in startup) + ")",
                  _target(median_startup <= TARGETS["startup_s"], "≤ 2 s"))
    verdicts.append(("start-up ≤ 2 s", median_startup <= TARGETS["startup_s"]))
    memory = results["memory"]["podium"]
    other.add_row("idle RSS, whole process tree", f"{memory['rss_total_mib']:.0f} MiB "
                  f"({memory['processes']} process(es); PSS {memory['pss_total_mib']:.0f})",
                  _target(memory["rss_total_mib"] <= TARGETS["idle_rss_mib"], "≤ 350 MiB"))
    verdicts.append(("idle RSS ≤ 350 MiB", memory["rss_total_mib"] <= TARGETS["idle_rss_mib"]))
    if "podium_after" in results["memory"]:
        other.add_row("RSS after the bench (gate imported)",
                      f"{results['memory']['podium_after']['rss_total_mib']:.0f} MiB", "-")
    for name in results["startup"]:
        if name != "podium":
            m = results["memory"].get(name, {})
            other.add_row(f"{name}: start-up · idle RSS",
                          f"{results['startup'][name][0]:.2f} s · "
                          f"{m.get('rss_total_mib', float('nan')):.0f} MiB "
                          f"({m.get('processes', '?')} processes)", "-")
    console.print(other)
    cpu = ", ".join(f"{n} {max(r['client_cpu'] for r in loads[n]):.2f}" for n in loads)
    machine = results["machine"]
    console.print(f"client CPU (cores, busiest level): {cpu}. Machine: {machine['cpus']} cores, "
                  f"load average at start {machine['load_avg'][0]:.2f}, Python "
                  f"{machine['python']}; client and servers share the cores.", markup=False)
    missed = [name for name, ok in verdicts if not ok]
    console.print("targets: all met" if not missed else "targets missed: " + "; ".join(missed),
                  markup=False)


def _mark(ratio: float, ok: bool) -> str:
    return f"{ratio:.2f} {'✓' if ok else '✗'}"


def _target(ok: bool, text: str) -> str:
    return f"{text} {'✓' if ok else '✗'}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=None,
                        help="measured seconds per server and client count (6; --quick 2)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="the seconds are split into this many interleaved rounds (3; "
                        "--quick 2)")
    parser.add_argument("--warmup", type=float, default=None,
                        help="unmeasured seconds before each slice (0.5; --quick 0.2)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--promotions", type=int, default=None,
                        help="promote/rollback cycles after a cold one (30; --quick 8)")
    parser.add_argument("--days", type=int, default=120,
                        help="paired shadow days the gate judges in each promotion (120)")
    parser.add_argument("--startups", type=int, default=None, help="start-ups timed (3; --quick 1)")
    parser.add_argument("--settle", type=float, default=None,
                        help="seconds to let a server settle before its idle memory (5; --quick 2)")
    parser.add_argument("--mlflow-workers", type=int, nargs="*", default=[4, 1],
                        help="MLflow configurations by worker count (4 is its default); none "
                        "to skip MLflow")
    parser.add_argument("--no-mlflow", action="store_true", help="same as --mlflow-workers")
    parser.add_argument("--mlflow-venv", type=Path, default=MLFLOW_VENV)
    parser.add_argument("--harness", type=Path, default=HARNESS,
                        help="the shared baseline harness's folder")
    parser.add_argument("--log-level", default="info",
                        help="for registry serve and the bare server alike (info, serve's "
                        "default)")
    parser.add_argument("--quick", action="store_true", help="short runs, for development")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--serve-bare", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare is not None:
        serve_bare(args.serve_bare, args.log_level)
        return 0
    os.environ["PODIUM_BENCH_HARNESS"] = str(args.harness.resolve())
    quick = args.quick
    args.seconds = args.seconds or (2.0 if quick else 6.0)
    args.warmup = args.warmup if args.warmup is not None else (0.2 if quick else 0.5)
    args.rounds = args.rounds or (2 if quick else 3)
    args.promotions = args.promotions or (8 if quick else 30)
    args.startups = args.startups or (1 if quick else 3)
    args.settle = args.settle if args.settle is not None else (2.0 if quick else 5.0)
    if args.no_mlflow:
        args.mlflow_workers = []
    if args.mlflow_workers and not (args.mlflow_venv / "bin" / "mlflow").exists():
        sys.exit(f"no MLflow in {args.mlflow_venv}: create it (see this file's docstring) or "
                 "pass --no-mlflow")
    results = run(args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=str) + "\n")
    report(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
