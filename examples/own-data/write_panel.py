"""Write a realistic panel of daily returns the way a team's pipeline lands one.

A long-format panel, one row per (date, asset): ``date, asset, ret`` and an extra numeric
column ``analyst_revision`` (a noisy signal of the next days' returns, known at the day's close).
The universe moves: assets list late, some delist for good, and a few asset-days are simply
missing. Each run lands the days not yet written, up to ``--through-day`` (a day index) or all
of them, each partition built in a hidden directory and renamed into place, so a reader never
sees half a day. Deterministic in ``--seed``: landing in several steps writes the same data as
landing at once.

    python examples/own-data/write_panel.py --out var/own-data/panel --through-day 600
    python examples/own-data/write_panel.py --out var/own-data/panel            # the rest

``--format csv`` appends rows to one CSV file instead (``--out`` is then the file).
Defaults are small, for tests and quick tries; ``--assets 3000`` gives several thousand rows a
day.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def simulate(assets: int, days: int, start: dt.date, seed: int) -> pd.DataFrame:
    """The whole panel, long format, sorted by date then asset."""
    rng = np.random.default_rng(seed)
    calendar = pd.bdate_range(start=start, periods=days)
    names = [f"TK{k:05d}" for k in range(assets)]
    listed = np.where(rng.random(assets) < 0.2, rng.integers(1, days, assets), 0)
    delisted = np.where(rng.random(assets) < 0.1, rng.integers(1, days, assets), days)
    delisted = np.maximum(delisted, listed + 1)
    betas = 1.0 + 0.3 * rng.standard_normal(assets)
    vol = 0.015 * np.exp(0.3 * rng.standard_normal(assets))
    market = 0.0003 + 0.01 * rng.standard_normal(days)
    signal = rng.standard_normal((days, assets))  # what the revision is noisy about
    returns = np.empty((days, assets))
    previous = np.zeros(assets)
    for t in range(days):
        alpha = 0.002 * signal[t - 1] - 0.1 * previous if t else 0.0
        returns[t] = np.maximum(betas * market[t] + alpha + vol * rng.standard_normal(assets),
                                -0.9)
        previous = returns[t] - betas * market[t]
    revision = signal + 1.0 * rng.standard_normal((days, assets))
    present = (np.arange(days)[:, None] >= listed) & (np.arange(days)[:, None] < delisted)
    present &= rng.random((days, assets)) > 0.005  # a few asset-days never arrive
    t, i = np.nonzero(present)
    return pd.DataFrame({"date": calendar[t].date, "asset": np.array(names)[i],
                         "ret": returns[t, i], "analyst_revision": revision[t, i]})


def land_partitions(panel: pd.DataFrame, out: Path, through: int | None) -> list[dt.date]:
    out.mkdir(parents=True, exist_ok=True)
    days = sorted(panel["date"].unique())[:through]
    landed = []
    for day, rows in panel[panel["date"].isin(days)].groupby("date", sort=True):
        final = out / f"date={day.isoformat()}"
        if final.exists():
            continue
        staging = out / f".staging-{day.isoformat()}-{os.getpid()}"
        staging.mkdir()
        table = pa.Table.from_pandas(rows.drop(columns="date"), preserve_index=False)
        pq.write_table(table, staging / "part-0.parquet")
        os.rename(staging, final)
        landed.append(day)
    for stale in out.glob(".staging-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return landed


def land_csv(panel: pd.DataFrame, out: Path, through: int | None) -> list[dt.date]:
    days = sorted(panel["date"].unique())[:through]
    done = set()
    if out.exists():
        done = set(pd.read_csv(out, usecols=["date"])["date"].map(dt.date.fromisoformat))
    new = panel[panel["date"].isin(days) & ~panel["date"].isin(done)]
    out.parent.mkdir(parents=True, exist_ok=True)
    new.to_csv(out, mode="a", header=not out.exists(), index=False)
    return sorted(new["date"].unique())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="panel directory (or CSV file)")
    parser.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    parser.add_argument("--assets", type=int, default=120)
    parser.add_argument("--days", type=int, default=700)
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2021, 1, 4))
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--through-day", type=int, default=None,
                        help="land days up to this index (default: every day)")
    args = parser.parse_args(argv)
    if args.assets < 2 or args.days < 2:
        parser.error("--assets and --days must be at least 2")
    panel = simulate(args.assets, args.days, args.start, args.seed)
    land = land_csv if args.format == "csv" else land_partitions
    landed = land(panel, args.out, args.through_day)
    rows = int(panel["date"].isin(landed).sum())
    span = f"{landed[0]} … {landed[-1]}" if landed else "nothing new"
    print(f"landed {len(landed)} day(s), {rows} rows: {span}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
