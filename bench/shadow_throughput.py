"""Shadow backfill throughput of the real runner against the bare maths of the same models.

Backfills D days x N assets x K versions from landed data to settled scores along the real
shadow path: K versions trained by the real trainer (a couple of epochs; different specs and
seeds, so the versions differ) as sealed Orbax bundles, registered as challengers in a SQLite
registry, a date-partitioned Parquet feed, and ``shadow.runner.run_shadow`` (features, one
prediction per pending day, predictions to Parquet, then one ``shadow_score`` row per settled
day). The ceiling is the bare work on the same arrays: the same models' jitted predictions plus
NumPy portfolio maths (quantile long/short weights, turnover, linear cost, net), features
computed once per feature configuration, nothing read or written. Both are timed in the same
process after a warm-up (compilation excluded from both, as in a long-lived ``registry serve``);
each real repeat gets a fresh database and prediction store, so the work is redone. A warm
process also holds the feed days it has decoded (as ``registry serve`` does between ticks), so
the main point is measured a second time with that cache dropped: every landed partition read
and decoded again. Reports medians, the ratio real / ceiling, and how both grow with D (at K)
and with K (at D).

    .venv/bin/python bench/shadow_throughput.py [--days 250] [--assets 500] [--versions 10]
                                                [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "disabled")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from flax import nnx  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sqlmodel import select  # noqa: E402

from registry import migrations, store  # noqa: E402
from registry.config import PodiumConfig  # noqa: E402
from registry.db import make_engine, read_session, write_session  # noqa: E402
from registry.ids import build_version_id, fingerprint  # noqa: E402
from registry.integrity import bundle_dir  # noqa: E402
from registry.models import ShadowScore  # noqa: E402
from shadow.runner import run_shadow  # noqa: E402
from trainer import TRAINER_CODE_VERSION, load_model  # noqa: E402
from trainer.config import (  # noqa: E402
    MarketConfig,
    ResolvedConfig,
    RunSettings,
    TrainConfig,
    WandbSettings,
)
from trainer.dataset import dataset_fingerprint, ensure_dataset, open_feed  # noqa: E402
from trainer.features import WARMUP_DAYS, compute_features  # noqa: E402
from trainer.feed import clear_cache as clear_feed_cache  # noqa: E402
from trainer.train import train_and_evaluate  # noqa: E402

TRACK = "bench"
HISTORY_DAYS = 400  # landed before the shadow window: feature warm-up plus the training window
# What varies between versions (cycled; every version also gets its own seed).
VARIANTS: tuple[tuple[str, dict], ...] = (
    ("lin", {}),
    ("resmom", {"residual_momentum": True}),
    ("fast", {"forward_days": 1}),
    ("mlp", {"model": "mlp", "hidden_sizes": (32, 16), "residual_momentum": True}),
    ("h20", {"forward_days": 20}),
)
console = Console()


class Clock:
    """Wall and CPU seconds of a block (CPU: every thread of this process, so it stays
    meaningful on a machine shared with other work)."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


@dataclass(frozen=True)
class Version:
    version_id: str
    fingerprint: str
    train: TrainConfig


def market_config(assets: int, days: int, max_days: int) -> MarketConfig:
    """One path for every D: the generator ignores ``initial_days``, so a market landed up to
    the shadow window's day D is a prefix of the longest one (its own dataset directory)."""
    return MarketConfig(name="bench", seed=7, n_assets=assets,
                        n_days=HISTORY_DAYS + max_days + 1,
                        initial_days=HISTORY_DAYS + days + 1)


def podium_config(root: Path, market: MarketConfig, db_file: Path) -> PodiumConfig:
    return PodiumConfig.model_validate({"database": {"url": f"sqlite:///{db_file}"},
                                        "artefacts_root": str(root), "track": TRACK,
                                        "market": market.model_dump()})


def train_versions(root: Path, market: MarketConfig, count: int) -> list[Version]:
    """``count`` real bundles (a couple of epochs each) sealed under ``root/models/TRACK``."""
    ensure_dataset(root / "datasets", market)
    cutoff = open_feed(root / "datasets", market).landed_days()[HISTORY_DAYS - 1]
    versions = []
    for k in range(count):
        name, overrides = VARIANTS[k % len(VARIANTS)]
        train = TrainConfig(label=f"b{k:02d}-{name}", seed=k, epochs=2, batch_size=4096,
                            train_days=300, validation_days=60, train_cutoff=cutoff,
                            market=market, **overrides)
        digest = fingerprint(train.identity(), dataset_fingerprint=dataset_fingerprint(market),
                             code_version=TRAINER_CODE_VERSION)
        version_id = build_version_id(train.label, cutoff, digest)
        out = bundle_dir(root, track=TRACK, version_id=version_id)
        if not out.is_dir():
            run = RunSettings(datasets_root=str(root / "datasets"),
                              wandb=WandbSettings(mode="disabled"))
            train_and_evaluate(ResolvedConfig(train=train, run=run), out)
        versions.append(Version(version_id, digest, train))
    return versions


def fresh_registry(config: PodiumConfig, versions: list[Version]):
    """A new database with ``versions`` registered, and no predictions stored yet."""
    shutil.rmtree(config.artefacts_root / "shadow", ignore_errors=True)
    db_file = Path(config.database.url.removeprefix("sqlite:///"))
    for path in db_file.parent.glob(db_file.name + "*"):
        path.unlink()
    engine = make_engine(config.database.url)
    migrations.upgrade(engine)
    for version in versions:
        with write_session(engine) as session:
            store.register_version(session, track=TRACK, version_id=version.version_id,
                                   fingerprint=version.fingerprint,
                                   artefacts_root=config.artefacts_root, actor="bench")
    return engine


def real_backfill(config: PodiumConfig, versions: list[Version], days: int, *,
                  cold_feed: bool = False) -> tuple[Clock, dict]:
    """The time of one ``run_shadow`` from scratch, and the net return it settled per version
    (``cold_feed``: with the process's decoded feed days dropped first, so every landed
    partition is read and decoded again)."""
    engine = fresh_registry(config, versions)
    try:
        if cold_feed:
            clear_feed_cache()
        with Clock() as clock:
            result = run_shadow(config, engine)
        errors = [v.error for v in result.versions if v.error]
        if errors or result.settled != days * len(versions):
            raise RuntimeError(f"the backfill settled {result.settled} of "
                               f"{days * len(versions)} (version, day)s: {errors}")
        with read_session(engine) as session:
            rows = session.exec(select(ShadowScore)).all()
    finally:
        engine.dispose()
    net = pd.DataFrame([(r.version_id, r.day, r.net) for r in rows],
                       columns=["version_id", "day", "net"])
    return clock, {v: g.sort_values("day")["net"].to_numpy() for v, g in
                   net.groupby("version_id")}


def cli_backfill(config: PodiumConfig, versions: list[Version], days: int) -> float:
    """Seconds for ``shadow run`` in a fresh process (imports, restoring, compiling included)."""
    engine = fresh_registry(config, versions)
    engine.dispose()
    config_file = config.artefacts_root / "podium.yaml"
    config_file.write_text(yaml.safe_dump(config.model_dump(
        mode="json", exclude={"source": True, "trainer": {"market", "panel", "extra_features"}})))
    shadow = Path(sys.executable).parent / "shadow"
    started = time.perf_counter()
    subprocess.run([str(shadow), "run", "--config", str(config_file)], check=True,
                   capture_output=True, env={**os.environ, "WANDB_MODE": "disabled"})
    elapsed = time.perf_counter() - started
    engine = make_engine(config.database.url)
    with read_session(engine) as session:
        settled = len(session.exec(select(ShadowScore.day)).all())
    engine.dispose()
    if settled != days * len(versions):
        raise RuntimeError(f"shadow run settled {settled} of {days * len(versions)}")
    return elapsed


class Ceiling:
    """The bare work on in-memory arrays: restored models, compiled predictions, NumPy maths."""

    def __init__(self, root: Path, versions: list[Version], quantile: float, cost_bps: float):
        self.quantile, self.cost_bps = quantile, cost_bps
        self.models = []
        for version in versions:
            predictor = load_model(bundle_dir(root, track=TRACK, version_id=version.version_id))
            graphdef, state = nnx.split(predictor.model)
            self.models.append((version, _bare_predict(graphdef), state))

    def run(self, returns: np.ndarray, days: int, count: int) -> tuple[Clock, dict]:
        """The time to settle the last ``days`` days for the first ``count`` versions."""
        with Clock() as clock:
            net = self._settle_all(returns, days, count)
        return clock, net

    def _settle_all(self, returns: np.ndarray, days: int, count: int) -> dict:
        first = returns.shape[0] - days - 1  # the first shadow day (after the cutoff)
        history = returns[first - (WARMUP_DAYS - 1):]  # what its features need, as the runner
        features: dict[tuple, np.ndarray] = {}
        net = {}
        for version, predict, state in self.models[:count]:
            key = (version.train.residual_momentum, version.train.xsec_demean)
            if key not in features:
                features[key] = compute_features(history, version.train)[WARMUP_DAYS - 1:-1]
            scores = np.asarray(predict(state, features[key]), dtype=np.float64)
            net[version.version_id] = self.settle(scores, returns[first + 1:])
        return net

    def settle(self, scores: np.ndarray, next_returns: np.ndarray) -> np.ndarray:
        """Daily net return of the quantile long/short book (first book free of cost)."""
        n_days, n_assets = scores.shape
        per_side = max(1, math.floor(self.quantile * n_assets + 1e-9))
        order = np.argsort(scores, axis=1)  # ties go to the lower asset index (stable order):
        ordered = np.take_along_axis(scores, order, axis=1)
        tied = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)  # rare with real-valued scores
        order[tied] = np.argsort(scores[tied], axis=1, kind="stable")
        weights = np.zeros_like(scores)
        rows = np.arange(n_days)[:, None]
        weights[rows, order[:, :per_side]] = -1.0 / per_side
        weights[rows, order[:, -per_side:]] = 1.0 / per_side
        gross = (weights * next_returns).sum(axis=1)
        turnover = np.abs(np.diff(weights, axis=0, prepend=weights[:1])).sum(axis=1)
        return gross - turnover * (self.cost_bps / 1e4)


def _bare_predict(graphdef):
    @jax.jit
    def predict(state, features):
        return nnx.merge(graphdef, state)(jnp.nan_to_num(features))

    return predict


def point_config(root: Path, *, assets: int, days: int, max_days: int) -> PodiumConfig:
    """The configuration of one measured point: the market landed through shadow day D."""
    market = market_config(assets, days, max_days)
    ensure_dataset(root / "datasets", market)
    return podium_config(root, market, root / "registry" / "podium.db")


def measure(root: Path, versions: list[Version], ceiling: Ceiling, *, assets: int, days: int,
            max_days: int, count: int, repeats: int) -> dict:
    config = point_config(root, assets=assets, days=days, max_days=max_days)
    subset = versions[:count]
    returns = open_feed(config.datasets_root, config.market).returns().to_numpy(np.float64)
    real_backfill(config, subset, days)  # warm-up: imports, compilation, page cache
    ceiling.run(returns, days, count)
    real_runs, ceiling_runs = [], []
    for _ in range(repeats):
        clock, real_net = real_backfill(config, subset, days)
        real_runs.append(clock)
        clock, bare_net = ceiling.run(returns, days, count)
        ceiling_runs.append(clock)
    for version_id, net in bare_net.items():  # the same work: the same numbers
        if not np.allclose(real_net[version_id], net, rtol=1e-6, atol=1e-9):
            raise RuntimeError(f"{version_id}: the runner's net returns differ from the ceiling's")
    point = {"days": days, "versions": count, "real_runs": [c.wall for c in real_runs],
             "ceiling_runs": [c.wall for c in ceiling_runs]}
    for name, runs in (("real", real_runs), ("ceiling", ceiling_runs)):
        point[name] = statistics.median(c.wall for c in runs)
        point[f"{name}_cpu"] = statistics.median(c.cpu for c in runs)
    point["ratio"] = point["real"] / point["ceiling"]
    point["paired"] = sorted(r.wall / c.wall for r, c in zip(real_runs, ceiling_runs, strict=True))
    point["ratio_cpu"] = point["real_cpu"] / point["ceiling_cpu"]
    return point


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=250, help="shadow days to settle (D)")
    parser.add_argument("--assets", type=int, default=500, help="assets in the market (N)")
    parser.add_argument("--versions", type=int, default=10, help="versions shadowed (K)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (median kept)")
    parser.add_argument("--quick", action="store_true",
                        help="a small smoke run: 40 days x 100 assets x 3 versions, 1 repeat")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the market and bundles here (default: a temporary dir)")
    args = parser.parse_args()
    if args.quick:
        args.days, args.assets, args.versions, args.repeats = 40, 100, 3, 1
    if min(args.days, args.assets, args.versions, args.repeats) < 1 or args.assets < 10:
        parser.error("sizes must be positive (and at least 10 assets)")

    root = args.workdir or Path(tempfile.mkdtemp(prefix="podium-shadow-bench-"))
    day_grid = sorted({math.ceil(args.days / 4), math.ceil(args.days / 2), args.days})
    version_grid = sorted({1, math.ceil(args.versions / 2), args.versions})
    largest = market_config(args.assets, args.days, args.days)
    console.print(f"device {jax.devices()[0]}; {args.days} days x {args.assets} assets x "
                  f"{args.versions} versions, {args.repeats} repeat(s); work in {root}")
    started = time.perf_counter()
    versions = train_versions(root, largest, args.versions)
    portfolio = podium_config(root, largest, root / "unused.db").shadow.portfolio
    ceiling = Ceiling(root, versions, portfolio.quantile, portfolio.cost_bps)
    console.print(f"set-up (market, {len(versions)} trained bundles): "
                  f"{time.perf_counter() - started:.1f} s, not timed")

    points = [(d, args.versions) for d in day_grid]
    points += [(args.days, k) for k in version_grid if k != args.versions]
    results = {}
    for days, count in points:
        results[days, count] = measure(root, versions, ceiling, assets=args.assets, days=days,
                                       max_days=args.days, count=count, repeats=args.repeats)
    main_point = results[args.days, args.versions]
    config = point_config(root, assets=args.assets, days=args.days, max_days=args.days)
    main_point["cold_runs"] = [real_backfill(config, versions, args.days, cold_feed=True)[0]
                               for _ in range(args.repeats)]
    main_point["cold"] = statistics.median(c.wall for c in main_point["cold_runs"])
    main_point["cold_cpu"] = statistics.median(c.cpu for c in main_point["cold_runs"])
    main_point["cold_runs"] = [c.wall for c in main_point["cold_runs"]]
    main_point["cli_runs"] = [cli_backfill(config, versions, args.days)
                              for _ in range(args.repeats)]
    main_point["cli"] = statistics.median(main_point["cli_runs"])

    summary = Table(title=f"Shadow backfill: {args.days} days x {args.assets} assets x "
                          f"{args.versions} versions (median of {args.repeats})")
    for name in ("path", "wall s", "CPU s", "runs (wall s)", "(version, day)s / s"):
        summary.add_column(name, justify="left" if name == "path" else "right")
    work = args.days * args.versions
    for label, key in (("real: run_shadow, warm process", "real"),
                       ("real: run_shadow, warm process, feed re-read", "cold"),
                       ("real: `shadow run`, fresh process", "cli"),
                       ("ceiling: jitted predict + NumPy book", "ceiling")):
        cpu = main_point.get(f"{key}_cpu")
        summary.add_row(label, f"{main_point[key]:.3f}", "" if cpu is None else f"{cpu:.3f}",
                        ", ".join(f"{s:.3f}" for s in main_point[f"{key}_runs"]),
                        f"{work / main_point[key]:,.0f}")
    console.print(summary)
    verdict = "met" if main_point["ratio"] <= 1.5 else "NOT met"
    paired = main_point["paired"]
    console.print(f"real (warm process) / ceiling: {main_point['ratio']:.2f} wall, "
                  f"{main_point['ratio_cpu']:.2f} CPU (target <= 1.5: {verdict}); each repeat "
                  f"against the ceiling run beside it: median {statistics.median(paired):.2f} "
                  f"(from {paired[0]:.2f} to {paired[-1]:.2f}); re-reading "
                  f"every landed partition: {main_point['cold'] / main_point['ceiling']:.2f}. "
                  "A fresh "
                  "process also imports JAX, restores every bundle and compiles: "
                  f"{main_point['cli'] / main_point['ceiling']:.1f}x the ceiling.")

    growth = Table(title="Growth with D (days) and K (versions), warm process")
    for name in ("D", "K", "real s", "ceiling s", "ratio", "ratio (CPU)", "real ms / (v, day)"):
        growth.add_column(name, justify="right")
    for (days, count), point in sorted(results.items(),
                                       key=lambda item: (item[0][1] != args.versions, item[0])):
        growth.add_row(str(days), str(count), f"{point['real']:.3f}", f"{point['ceiling']:.3f}",
                       f"{point['ratio']:.2f}", f"{point['ratio_cpu']:.2f}",
                       f"{1e3 * point['real'] / (days * count):.2f}")
    console.print(growth)
    if args.workdir is None:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
