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
  ``registry serve`` (``bench/bare_server.py``): the ceiling of this stack;
- **mlflow** and **mlflow-w1**: MLflow's registry REST server on SQLite from its own virtual
  environment, with its default 4 workers and with 1:
  ``GET /api/2.0/mlflow/registered-models/alias``.

Then, on Podium: promotion latency over promote/rollback cycles through the real gate (no
force; each cycle on a track of its own, where a clearly better challenger has 120 paired
shadow days beside the champion); the time from starting ``registry serve`` to
``/api/v1/health`` answering 200; the idle RSS of its whole process tree. It prints one report
with the ratios and the targets; ``--json`` keeps every figure.

    .venv/bin/python bench/resolve.py            # the full run, about 4 minutes
    .venv/bin/python bench/resolve.py --quick    # short, for development
    .venv/bin/python bench/resolve.py --no-mlflow --seconds 3 --clients 1 8

MLflow is expected in ``var/bench/mlflow-venv`` (``python3 -m venv var/bench/mlflow-venv &&
var/bench/mlflow-venv/bin/pip install "mlflow>=3,<4"``); it is never a dependency of Podium.
Each server is stopped by its PID (and its workers' PIDs), never by name.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import server_processes
from http_load import load, request_bytes, summarize
from mlflow_server import mlflow_champion, mlflow_command
from seeded_registry import SERVER_CONFIG, TRACK, make_registry, promotion_cycles

from registry.testing import RegistryServer, free_port

REPO = Path(__file__).resolve().parent.parent
MLFLOW_VENV = REPO / "var" / "bench" / "mlflow-venv"
BARE_SERVER = Path(__file__).resolve().parent / "bare_server.py"
TARGETS = {"vs_mlflow": 4.0, "vs_bare": 0.6, "p99_ms_at_8": 10.0, "idle_rss_mib": 350.0,
           "startup_s": 2.0}


# --------------------------------------------------------------------------- the run
@dataclass
class Contender:
    """A started server and the request that resolves its champion."""

    port: int
    pid: int
    stop: Callable[[], None]
    raw: bytes = b""
    expect: bytes = b""


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
                        contender.port, contender.raw, contender.expect, clients=clients,
                        seconds=seconds, warmup=args.warmup, server_pid=contender.pid))

    asyncio.run(rounds())
    return {name: [summarize(c, slices[name][c]) for c in args.clients] for name in contenders}


def start_other(name: str, cmd: list[str], *, workdir: Path, port: int, health: str,
                settle_s: float, results: dict[str, Any]) -> Contender:
    """Start a server to compare with, time it to healthy and take its idle memory."""
    process, startup_s = server_processes.start(
        cmd, cwd=workdir, health_url=f"http://127.0.0.1:{port}{health}",
        log_path=workdir / f"{name}.log")
    contender = Contender(port, process.pid, lambda: server_processes.stop(process))
    server_processes.settle(process.pid, min_s=settle_s, max_s=max(settle_s, 20.0))
    results["startup"][name] = [startup_s]
    results["memory"][name] = server_processes.memory(process.pid)
    return contender


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"startup": {}, "memory": {}, "machine": {
        "cpus": os.cpu_count(), "load_avg": os.getloadavg(), "python": sys.version.split()[0]},
        "params": {k: str(v) for k, v in vars(args).items()}}
    root = Path(tempfile.mkdtemp(prefix="podium-resolve-"))
    contenders: dict[str, Contender] = {}
    registry = None
    try:
        # Podium first, alone on the machine: start-up (fresh processes on the same registry)
        # and idle memory; the last one started stays up
        registry = make_registry(root / "podium")
        server = RegistryServer(database_url=registry.database_url,
                                artefacts_root=registry.artefacts_root, workdir=registry.root,
                                config=SERVER_CONFIG, log_level=args.log_level)
        startups = []
        for attempt in range(args.startups):
            startups.append(server.start(healthy=True))
            if attempt == 0:
                server_processes.settle(server.process.pid, min_s=args.settle,
                                        max_s=max(args.settle, 20.0))
                results["memory"]["podium"] = server_processes.memory(server.process.pid)
            if attempt < args.startups - 1:
                server.stop()
        results["startup"]["podium"] = startups
        contenders["podium"] = Contender(server.port, server.process.pid, server.stop,
                                         request_bytes("GET", f"/api/v1/tracks/{TRACK}/champion",
                                                       server.port, registry.read_token),
                                         registry.champion.encode())
        print(f"podium: start-up to healthy {', '.join(f'{s:.2f}' for s in startups)} s; idle "
              f"RSS {results['memory']['podium']['rss_total_mib']:.0f} MiB", flush=True)

        # the bare handler on the same stack
        port = free_port()
        contenders["bare"] = bare = start_other(
            "bare", [sys.executable, str(BARE_SERVER), str(port), args.log_level], workdir=root,
            port=port, health="/api/v1/health", settle_s=args.settle, results=results)
        bare.raw = request_bytes("GET", f"/api/v1/tracks/{TRACK}/champion", port,
                                 registry.read_token)
        bare.expect = b"version_id"

        # MLflow, from its own virtual environment
        for workers in args.mlflow_workers:
            name = "mlflow" if workers == 4 else f"mlflow-w{workers}"
            data = root / name
            data.mkdir()
            port = free_port()
            contenders[name] = mlflow = start_other(
                name, mlflow_command(args.mlflow_venv, data, port, workers), workdir=data,
                port=port, health="/health", settle_s=max(args.settle, 5.0), results=results)
            path, version = mlflow_champion(port)
            mlflow.raw = request_bytes("GET", path, port, registry.read_token)
            mlflow.expect = f'"version": "{version}"'.encode()
            print(f"{name}: start-up to healthy {results['startup'][name][0]:.2f} s", flush=True)

        print(f"resolving: {len(contenders)} servers x {args.clients} clients, "
              f"{args.seconds:g} s each in {args.rounds} round(s)", flush=True)
        results["loads"] = measure_all(contenders, args)
        podium = contenders["podium"]
        results["promotion"] = asyncio.run(promotion_cycles(
            registry, podium.port, args.promotions, args.days))
        results["memory"]["podium_after"] = server_processes.memory(podium.pid)
    finally:
        for contender in contenders.values():
            contender.stop()
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
    parser.add_argument("--log-level", default="info",
                        help="for registry serve and the bare server alike (info, serve's "
                        "default)")
    parser.add_argument("--quick", action="store_true", help="short runs, for development")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
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
