"""The evidence path ends where the gate's own superiority rule ends, in each mode."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from scorer.evidence_path import boundary, evidence_path
from scorer.gate import evaluate_gate
from scorer.settings import GateSettings


def _gate_report(champion: np.ndarray, challenger: np.ndarray, settings: GateSettings):
    days = pd.date_range("2025-01-01", periods=len(champion), freq="B")

    def frame(net: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({"net": net, "gross": net, "turnover": 0.5, "cost": 0.0},
                            index=days)

    decision = evaluate_gate({"champ": frame(champion), "chal": frame(challenger)},
                             champion="champ", challengers=["chal"], settings=settings,
                             spa_reps=0)
    return decision.report("chal")


@pytest.mark.parametrize("mode", ["anytime", "group_sequential"])
def test_the_last_bound_is_the_gates_own(mode: str) -> None:
    rng = np.random.default_rng(3)
    champion, challenger = rng.normal(1e-4, 0.01, 100), rng.normal(1e-3, 0.01, 100)
    settings = GateSettings(mode=mode, min_days=60, horizon_days=200)
    report = _gate_report(champion, challenger, settings)
    path = evidence_path(challenger - champion, settings=settings,
                         level=settings.alpha / report.k_active)
    assert path.running_mean[-1] == pytest.approx(report.mean_difference)
    assert path.lower_bound[-1] == pytest.approx(report.lower_bound)
    assert path.running_mean[0] == pytest.approx(challenger[0] - champion[0])


def test_each_step_is_the_mean_of_the_days_so_far_and_looks_follow_the_mode() -> None:
    d = np.array([0.002, -0.001, 0.003, 0.0])
    anytime = evidence_path(d, settings=GateSettings(mode="anytime"), level=0.05)
    assert anytime.running_mean == pytest.approx([0.002, 0.0005, 0.004 / 3, 0.001])
    assert anytime.lower_bound[0] is None and all(b is not None for b in anytime.lower_bound[1:])
    looks = GateSettings(mode="group_sequential", min_days=3, horizon_days=3)
    sequential = evidence_path(d, settings=looks, level=0.05)
    assert [b is not None for b in sequential.lower_bound] == [False, False, True, False]
    crossing = evidence_path(np.full(6, 0.01) + [0, 1e-4, 0, 1e-4, 0, 1e-4],
                             settings=GateSettings(mode="group_sequential", min_days=3,
                                                   horizon_days=6), level=0.05)
    assert crossing.lower_bound[2] > 0  # crossed on the first look: the decision stands
    assert crossing.lower_bound[3:] == [None, None, None]
    fixed = evidence_path(d, settings=GateSettings(mode="fixed"), level=0.05)
    assert fixed.lower_bound == [None] * 4


def test_the_anytime_boundary_shrinks_as_days_accrue() -> None:
    settings = GateSettings(mode="anytime")
    widths = [boundary(settings, 0.05, t) for t in (10, 100, 1000)]
    assert widths[0] > widths[1] > widths[2] > 0
    assert all(math.isfinite(w) for w in widths)


def test_no_days_no_path() -> None:
    path = evidence_path(np.array([]), settings=GateSettings(), level=0.05)
    assert path.difference == path.running_mean == path.lower_bound == []
