"""The evidence path ends where the gate's anytime rule ends, and each step is hand-checkable."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from scorer.confidence_sequence import mixture_boundary
from scorer.evidence_path import evidence_path
from scorer.gate import evaluate_gate
from scorer.settings import GateSettings


def test_each_step_is_the_mean_and_bound_of_the_days_so_far() -> None:
    d = np.array([0.002, -0.001, 0.003])
    path = evidence_path(d, level=0.05, horizon_days=120)
    assert path.running_mean == pytest.approx([0.002, 0.0005, 0.004 / 3])
    assert path.lower_bound[0] is None
    # two days, one Bartlett lag of weight 1/2: γ0 = 2.25e-6, γ1 = −1.125e-6 → Ω = 1.125e-6
    omega = 2.25e-6 + 2 * 0.5 * -1.125e-6
    expected = 0.0005 - math.sqrt(omega) * mixture_boundary(2, 0.05, 120)
    assert path.lower_bound[1] == pytest.approx(expected)


def test_the_last_step_is_the_gates_own_lower_bound() -> None:
    rng = np.random.default_rng(3)
    days = pd.date_range("2025-01-01", periods=150, freq="B")
    frame = lambda net: pd.DataFrame({"net": net, "gross": net, "turnover": 0.5,  # noqa: E731
                                      "cost": 0.0}, index=days)
    champion, challenger = rng.normal(1e-4, 0.01, 150), rng.normal(3e-3, 0.01, 150)
    settings = GateSettings()
    decision = evaluate_gate({"champ": frame(champion), "chal": frame(challenger)},
                             champion="champ", challengers=["chal"], settings=settings,
                             since=None, k_active=1, n_trials=1, trial_sharpes=None,
                             spa_reps=0)
    report = decision.report("chal")
    path = evidence_path(challenger - champion, level=settings.alpha,
                         horizon_days=settings.horizon_days)
    assert path.running_mean[-1] == pytest.approx(report.mean_difference)
    assert path.lower_bound[-1] == pytest.approx(report.lower_bound)


def test_no_days_no_path() -> None:
    path = evidence_path(np.array([]), level=0.05, horizon_days=120)
    assert path.difference == path.running_mean == path.lower_bound == []
