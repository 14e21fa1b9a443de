"""A fresh SQLite registry for the benchmarks, with tokens and a champion, and the promotion
benchmark run against a server on it: promote a clearly better challenger through the real gate,
then roll back, over and over."""

from __future__ import annotations

import datetime as dt
import json
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from http_load import Connection, percentile, request_bytes
from sqlalchemy import Engine

from registry import migrations
from registry.auth import create_token
from registry.db import make_engine, write_session
from registry.models import ShadowScore
from registry.testing import register_stand_in

TRACK = "equities-daily"
# the scheduled shadow job starts with the server (the default) but never fires mid-bench
SERVER_CONFIG = {"shadow": {"schedule": "0 0 1 1 *"}}


@dataclass
class Registry:
    root: Path
    database_url: str
    engine: Engine
    read_token: str
    promote_token: str
    champion: str

    @property
    def artefacts_root(self) -> Path:
        return self.root / "artefacts"

    def register(self, label: str, *, track: str = TRACK, champion: bool = False) -> str:
        """A stand-in challenger (bundle verified), promoted by force if ``champion``."""
        return register_stand_in(self.engine, self.artefacts_root, label, track=track,
                                 actor="bench", champion=champion)


def make_registry(root: Path) -> Registry:
    """A fresh SQLite registry: migrated, tokens created, a champion registered and promoted."""
    (root / "artefacts").mkdir(parents=True)
    database_url = f"sqlite:///{root / 'podium.db'}"
    engine = make_engine(database_url)
    migrations.upgrade(engine)
    with write_session(engine) as session:
        _, read_token = create_token(session, name="consumer", scope="read")
        _, promote_token = create_token(session, name="promoter", scope="promote")
    registry = Registry(root, database_url, engine, read_token, promote_token, "")
    registry.champion = registry.register("v1-linear", champion=True)
    return registry


def settle_days(registry: Registry, means: dict[str, float], days: int, seed: int) -> None:
    """``days`` settled shadow days for each version from 2025-07-01 (mean daily net, sd 1 %)."""
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
            champion = registry.register("v1-linear", track=track, champion=True)
            challenger = registry.register("v2-mlp", track=track)
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
