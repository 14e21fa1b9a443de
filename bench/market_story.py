"""Check the demo's story on the default market with trained models and plain NumPy.

Trains the base linear champion and three challengers (residual momentum, fast = 1-day target,
seed only), lets the rest of the market land, scores every day after the cutoff with the
bundles' predictors, and builds the shadow book: dollar-neutral, long the top quintile and short
the bottom one (each side summing to 1), gross = sum w(t) r(t+1), turnover = sum |w(t) - w(t-1)|,
net = gross - turnover * cost_bps / 1e4. Prints gross, turnover, net, net Sharpe and the paired
t-statistic of the daily net difference against the champion.

    WANDB_MODE=disabled .venv/bin/python bench/market_story.py [--root DIR] [--market-json JSON]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("WANDB_MODE", "disabled")

from trainer import load_model  # noqa: E402
from trainer.config import MarketConfig, ResolvedConfig  # noqa: E402
from trainer.dataset import dataset_dir, ensure_dataset, land_days, open_feed  # noqa: E402
from trainer.train import train_and_evaluate  # noqa: E402

VARIANTS = {
    "champion": {},
    "resmom": {"residual_momentum": True},
    "fast": {"forward_days": 1},
    "seed": {"seed": 1},
}


def quintile_book(scores: np.ndarray) -> np.ndarray:
    """``[days, assets]`` weights: +1/q on the top quintile, -1/q on the bottom one."""
    days, assets = scores.shape
    q = assets // 5
    order = np.argsort(scores, axis=1, kind="stable")
    weights = np.zeros_like(scores, dtype=np.float64)
    rows = np.arange(days)[:, None]
    weights[rows, order[:, :q]] = -1.0 / q
    weights[rows, order[:, -q:]] = 1.0 / q
    return weights


def shadow_returns(scores: np.ndarray, next_returns: np.ndarray, cost_bps: float) -> dict:
    weights = quintile_book(scores)
    gross = (weights * next_returns).sum(axis=1)
    previous = np.vstack([np.zeros((1, weights.shape[1])), weights[:-1]])
    turnover = np.abs(weights - previous).sum(axis=1)
    turnover[0] = 0.0  # the first day's entry is not a trade of this book
    return {"gross": gross, "turnover": turnover, "net": gross - turnover * cost_bps / 1e4}


def paired_t(a: np.ndarray, b: np.ndarray) -> float:
    diff = a - b
    return float(diff.mean() / (diff.std(ddof=1) / np.sqrt(len(diff))))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=None, help="work directory (default: temp)")
    parser.add_argument("--market-json", default="{}", help="MarketConfig overrides (JSON)")
    parser.add_argument("--train-json", default="{}", help="TrainConfig overrides (JSON)")
    parser.add_argument("--cost-bps", type=float, default=10.0)
    args = parser.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="podium-story-"))
    market = MarketConfig(**json.loads(args.market_json))
    datasets = root / "datasets"
    ensure_dataset(datasets, market)

    predictors = {}
    for name, overrides in VARIANTS.items():
        train = {**json.loads(args.train_json), **overrides, "market": market.model_dump()}
        config = ResolvedConfig.model_validate(
            {"train": train, "run": {"datasets_root": str(datasets), "spec_name": name}}
        )
        out = root / "models" / name
        if not out.exists():
            result = train_and_evaluate(config, out)
            print(
                f"trained {name}: val_rank_ic {result['val_rank_ic']:.4f} "
                f"steps {result['steps_completed']} in {result['wall_time_seconds']:.1f}s",
                file=sys.stderr,
            )
        predictors[name] = load_model(out)

    land_days(datasets, market, market.n_days)  # the whole shadow window lands
    returns = open_feed(datasets, market).returns()
    cutoff = predictors["champion"].train_cutoff
    dates = [ts.date() for ts in returns.index]
    first = dates.index(cutoff)
    score_days = returns.index[first:-1]  # each scored day needs the next day's return
    next_returns = returns.to_numpy()[first + 1 :]
    print(
        f"market {dataset_dir(datasets, market).name[:12]}: {market.n_assets} assets, "
        f"shadow window {len(score_days)} days after {cutoff}, cost {args.cost_bps} bps"
    )

    books = {}
    for name, predictor in predictors.items():
        scores = predictor.score_days(returns, score_days).to_numpy()
        books[name] = shadow_returns(scores, next_returns, args.cost_bps)
    header = f"{'variant':9s} {'gross bp':>9s} {'turnover':>9s} {'net bp':>8s} {'net SR':>7s}"
    print(header + f" {'t(net-champ)':>13s} {'t(gross-champ)':>15s}")
    for name, book in books.items():
        sharpe = book["net"].mean() / book["net"].std(ddof=1) * np.sqrt(252)
        row = (
            f"{name:9s} {book['gross'].mean() * 1e4:9.2f} {book['turnover'].mean():9.3f} "
            f"{book['net'].mean() * 1e4:8.2f} {sharpe:7.2f}"
        )
        if name != "champion":
            row += (
                f" {paired_t(book['net'], books['champion']['net']):13.2f}"
                f" {paired_t(book['gross'], books['champion']['gross']):15.2f}"
            )
        print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
