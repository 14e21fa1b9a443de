"""The gate's superiority evidence as it grew: after each paired day t, the running mean of the
daily net difference d and the lower bound d̄_t − σ̂_t·b(t) that the gate compares with its
margin, b the boundary of the gate's mode (``scorer.superiority``), recomputed on every prefix.

- anytime: the studentized mixture boundary, on every day from the second.
- group_sequential: the studentized O'Brien–Fleming look, on days ``min_days`` … horizon,
  none after the first crossing (the decision stands).
- fixed: no bound path (one t-test on the horizon day); the running mean only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scorer.settings import GateSettings
from scorer.superiority import anytime_boundary, group_sequential_boundary, long_run_sd


@dataclass(frozen=True)
class EvidencePath:
    difference: list[float]  # d_t: challenger's net − champion's net, per paired day
    running_mean: list[float]  # d̄_t
    lower_bound: list[float | None]  # d̄_t − σ̂_t·b(t); None on days the gate makes no look


def boundary(settings: GateSettings, level: float, day: int) -> float | None:
    """b(day) of the gate's mode at ``level`` (α/k), or None when no look is made that day."""
    if day < 2:
        return None
    if settings.mode == "anytime":
        return anytime_boundary(level, settings.horizon_days, day)
    if settings.mode == "group_sequential":
        horizon = max(settings.horizon_days, settings.min_days)
        if settings.min_days <= day <= horizon:
            return group_sequential_boundary(level, settings.min_days, horizon, day)
    return None


def evidence_path(difference: np.ndarray, *, settings: GateSettings,
                  level: float) -> EvidencePath:
    """The running mean and the gate's lower bound after each of the ``difference`` days."""
    d = np.asarray(difference, dtype=float)
    n_days = len(d)
    running = np.cumsum(d) / np.arange(1, n_days + 1) if n_days else np.array([])
    lower: list[float | None] = []
    decided = False  # a group-sequential crossing is a decision: no look after it
    for t in range(1, n_days + 1):
        b = None if decided else boundary(settings, level, t)
        bound = None if b is None else float(running[t - 1] - long_run_sd(d[:t]) * b)
        decided = decided or (settings.mode == "group_sequential" and bound is not None
                              and bound > settings.margin)
        lower.append(bound)
    return EvidencePath(difference=[float(x) for x in d],
                        running_mean=[float(x) for x in running], lower_bound=lower)
