"""Leaderboard order and contents, from plain values and a gate decision."""

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from scorer.gate import evaluate_gate
from scorer.leaderboard import VersionEntry, build_leaderboard, cumulative_net_by_version
from scorer.report import Verdict
from scorer.settings import GateSettings

DAYS = pd.bdate_range("2024-01-01", periods=250, name="day")


def rows(mean, seed):
    net = np.random.default_rng(seed).normal(mean, 0.01, len(DAYS))
    return pd.DataFrame(
        {"gross": net + 0.0005, "turnover": 0.5, "cost": 0.0005, "net": net, "rank_ic": 0.02},
        index=DAYS,
    )


def test_champion_first_then_challengers_by_verdict_then_mean_net_retired_last():
    daily = {
        "champ": rows(0.0005, 1),
        "winner": rows(0.005, 2),
        "rich_but_failing": rows(0.0012, 3),
        "poor": rows(-0.001, 4),
        "old": rows(0.01, 5),
    }
    versions = [
        VersionEntry("old", "retired", "mlp-small", dt.date(2023, 6, 1)),
        VersionEntry("poor", "challenger", "linear", dt.date(2023, 12, 1)),
        VersionEntry("rich_but_failing", "challenger", "mlp", dt.date(2023, 12, 1)),
        VersionEntry("new", "challenger", "mlp-wide", dt.date(2023, 12, 20)),
        VersionEntry("winner", "challenger", "mlp-deep", dt.date(2023, 12, 1)),
        VersionEntry("champ", "champion", "mlp", dt.date(2023, 11, 1)),
    ]
    decision = evaluate_gate(
        daily,
        champion="champ",
        challengers=["poor", "rich_but_failing", "new", "winner"],
        settings=GateSettings(),
        spa_reps=0,
    )
    board = build_leaderboard(versions, daily, decision)
    assert [row.version_id for row in board] == [
        "champ",
        "winner",
        "rich_but_failing",
        "poor",
        "new",
        "old",
    ]
    winner = board[1]
    assert winner.verdict is Verdict.PASS
    assert winner.reason == decision.report("winner").reasons[0]
    assert winner.metrics.mean_net == pytest.approx(daily["winner"]["net"].mean())
    assert board[0].verdict is None and board[-1].verdict is None
    assert board[4].verdict is Verdict.INSUFFICIENT_DATA and board[4].metrics.days == 0
    payload = json.loads(json.dumps([row.to_dict() for row in board], allow_nan=False))
    assert payload[1]["train_cutoff"] == "2023-12-01" and payload[1]["verdict"] == "PASS"


def test_without_a_decision_rows_have_metrics_but_no_verdict():
    board = build_leaderboard(
        [VersionEntry("a", "challenger", "linear")], {"a": rows(0.001, 6)}, None
    )
    assert board[0].verdict is None and board[0].metrics.days == 250


def test_cumulative_net_series_per_version():
    daily = {"a": rows(0.001, 7).iloc[::-1]}  # order of rows does not matter
    series = cumulative_net_by_version(daily)["a"]
    assert series.index.is_monotonic_increasing
    assert series.iloc[-1] == pytest.approx(daily["a"]["net"].sum())
