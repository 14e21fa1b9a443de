"""A model trained outside Podium, competing on Podium's leaderboard through the REST API.

A small ridge regression in plain NumPy on three signals (last day's return, last week's
return, one month's momentum skipping the last week), and optionally the last day's value of
extra numeric columns of the panel (``--extra analyst_revision``), trained on the history that
has landed,
registered as an external version with its provenance (the coefficients' file and digest),
then, day after day: score every asset from what has landed, submit the scores for the next
trading day *before* that day's returns land, and wait for the day to land. Podium's shadow
runner settles the submissions like any built-in version's predictions.

    python examples/own-data/external_model.py --data DIR --days 20 --track equities-daily

``DIR`` holds the daily returns as ``date=YYYY-MM-DD/`` partitions of Parquet with columns
``asset`` and ``ret`` and any ``--extra`` columns (the bundled market's dataset directory, or
your own panel). Without
``--land``, the script waits for your pipeline to land each next day; with it (a demo on the
bundled market), it lets the day land itself with ``shadow feed --days 1``. The registry's
URL and a token with the ``promote`` scope come from ``--url``/``$PODIUM_URL`` and
``--token``/``$PODIUM_TOKEN``. Nothing here imports Podium's trainer: only its client.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from registry.client import Client
from registry.errors import LookAhead, PodiumError

HISTORY_DAYS = 250  # training window
LOOKBACK = 21  # days of returns the signals need
RIDGE = 1.0
SIGNALS = ("reversal_1d", "reversal_5d", "momentum_21d")


# --------------------------------------------------------------------------- data


def landed_days(data: Path) -> list[dt.date]:
    return sorted(dt.date.fromisoformat(p.name[5:]) for p in data.glob("date=*") if p.is_dir())


def read_columns(data: Path, days: list[dt.date], extras: tuple[str, ...] = ()
                 ) -> list[pd.DataFrame]:
    """Wide daily returns, then each extra column, of ``days`` (rows: days, columns: the
    assets that reported on any of them)."""
    frames = []
    for day in days:
        part = pd.read_parquet(data / f"date={day.isoformat()}", columns=["asset", "ret", *extras])
        frames.append(part.assign(date=pd.Timestamp(day)))
    rows = pd.concat(frames)
    return [rows.pivot(index="date", columns="asset", values=column).sort_index()
            for column in ("ret", *extras)]


# --------------------------------------------------------------------------- the model


def _zscore(x: np.ndarray) -> np.ndarray:
    mean = np.nanmean(x, axis=-1, keepdims=True)
    std = np.nanstd(x, axis=-1, keepdims=True)
    return np.nan_to_num((x - mean) / np.where(std > 0, std, 1.0))


def signals(returns: np.ndarray, extras: list[np.ndarray]) -> np.ndarray:
    """``[days, assets, 3 + len(extras)]`` from ``[days + LOOKBACK - 1, assets]`` of returns
    (and of each extra column): each day's signals (cross-sectional z-scores), for the last
    ``len(returns) - LOOKBACK + 1`` rows."""
    filled = np.nan_to_num(returns)
    cumulative = np.vstack([np.zeros((1, filled.shape[1])), np.cumsum(filled, axis=0)])
    end = np.arange(LOOKBACK, len(filled) + 1)  # one past each day's row
    last_day = filled[end - 1]
    last_week = cumulative[end] - cumulative[end - 5]
    momentum = cumulative[end - 5] - cumulative[end - LOOKBACK]
    columns = [_zscore(-last_day), _zscore(-last_week), _zscore(momentum)]
    columns += [_zscore(extra[end - 1]) for extra in extras]
    return np.stack(columns, axis=-1)


def fit(returns: pd.DataFrame, extras: list[pd.DataFrame]) -> np.ndarray:
    """Ridge coefficients predicting the next day's cross-sectional z-scored return."""
    matrix = returns.to_numpy()
    features = signals(matrix[:-1], [e.to_numpy()[:-1] for e in extras])  # day t's signals ...
    target = _zscore(matrix[LOOKBACK:])  # ... and day t+1's return
    x, y = features.reshape(-1, features.shape[-1]), target.reshape(-1)
    return np.linalg.solve(x.T @ x + RIDGE * np.eye(len(x.T)), x.T @ y)


def predict(coefficients: np.ndarray, returns: pd.DataFrame, extras: list[pd.DataFrame]
            ) -> pd.DataFrame:
    """Scores for the day after the last row of ``returns`` (its last LOOKBACK days)."""
    recent = returns.iloc[-LOOKBACK:]
    scores = signals(recent.to_numpy(), [e.iloc[-LOOKBACK:].to_numpy() for e in extras]
                     )[-1] @ coefficients
    present = recent.iloc[-1].notna().to_numpy()  # assets that still report
    return pd.DataFrame({"asset": recent.columns[present].astype(str),
                         "score": scores[present]})


# --------------------------------------------------------------------------- the loop


def next_trading_day(day: dt.date) -> dt.date:
    return (pd.Timestamp(day) + pd.offsets.BDay(1)).date()


def wait_for_landing(data: Path, after: dt.date, *, land: bool, poll: float,
                     timeout: float) -> None:
    if land:
        shadow = shutil.which("shadow") or str(Path(sys.executable).parent / "shadow")
        subprocess.run([shadow, "feed", "--days", "1"], check=True, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while landed_days(data)[-1] <= after:
        if time.monotonic() > deadline:
            raise SystemExit(f"no new day landed after {after} in {timeout:.0f} s")
        time.sleep(poll)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True,
                        help="directory of date=YYYY-MM-DD/ Parquet partitions (asset, ret)")
    parser.add_argument("--track", default="equities-daily")
    parser.add_argument("--label", default="numpy-ridge")
    parser.add_argument("--days", type=int, default=20, help="days to submit, one at a time")
    parser.add_argument("--extra", action="append", default=[], metavar="COLUMN",
                        help="a numeric column of the panel to use as one more signal "
                             "(repeatable)")
    parser.add_argument("--land", action="store_true",
                        help="demo: land each day with `shadow feed --days 1`")
    parser.add_argument("--poll", type=float, default=5.0, help="seconds between checks")
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="longest wait for a day to land")
    parser.add_argument("--out", type=Path, default=Path("external-model.npz"),
                        help="where the coefficients are saved (the provenance)")
    parser.add_argument("--url", default=os.environ.get("PODIUM_URL"))
    parser.add_argument("--token", default=os.environ.get("PODIUM_TOKEN"))
    args = parser.parse_args(argv)

    days = landed_days(args.data)
    if len(days) < LOOKBACK + 2:
        raise SystemExit(f"{args.data}: {len(days)} day(s) landed; need {LOOKBACK + 2}")
    cutoff, extras = days[-1], tuple(args.extra)
    returns, *extra_columns = read_columns(args.data, days[-HISTORY_DAYS:], extras)
    coefficients = fit(returns, extra_columns)
    np.savez(args.out, coefficients=coefficients)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    with Client(args.url, args.token) as client:
        version = client.register_external(
            args.track, label=args.label, train_cutoff=cutoff,
            description="Ridge regression on 1-day and 5-day reversal and 21-day momentum"
                        + "".join(f", {column}" for column in extras)
                        + ", trained outside Podium in NumPy.",
            uri=args.out.resolve().as_uri(), digest=f"sha256:{digest}",
            metadata={"framework": f"numpy {np.__version__}", "signals": [*SIGNALS, *extras],
                      "coefficients": [round(float(c), 6) for c in coefficients],
                      "history_days": HISTORY_DAYS})
        version_id = version["version_id"]
        print(f"registered {version_id} (trained through {cutoff})", flush=True)
        for _ in range(args.days):
            last = landed_days(args.data)[-1]
            day = next_trading_day(last)
            returns, *extra_columns = read_columns(args.data,
                                                   landed_days(args.data)[-LOOKBACK:], extras)
            scores = predict(coefficients, returns, extra_columns)
            try:
                receipt = client.submit_predictions(version_id, day, scores, as_parquet=True)
                stored = receipt["submission"]
                print(f"{day}: {stored['n_assets']} scores submitted at "
                      f"{stored['arrived_at']}", flush=True)
            except LookAhead as refused:  # the day landed first: too late for it
                print(f"{day}: too late ({refused.detail})", flush=True)
            wait_for_landing(args.data, last, land=args.land, poll=args.poll,
                             timeout=args.timeout)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PodiumError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        sys.exit(1)
