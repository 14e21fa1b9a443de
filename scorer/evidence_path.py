"""The gate's anytime evidence as it grew: after each paired day T, the running mean of the
daily net difference d and the lower bound d̄_T − σ̂_T·m(T) that the gate compares with its
margin (``scorer.gate``'s anytime rule, recomputed on every prefix of the paired days)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from scorer.confidence_sequence import mixture_boundary
from scorer.newey_west import newey_west_variance


@dataclass(frozen=True)
class EvidencePath:
    difference: list[float]  # d_t: challenger's net − champion's net, per paired day
    running_mean: list[float]  # d̄_T
    lower_bound: list[float | None]  # d̄_T − σ̂_T·m(T); None on the first day (no σ̂)


def evidence_path(difference: np.ndarray, *, level: float, horizon_days: int) -> EvidencePath:
    """The running mean and anytime lower bound after each of the ``difference`` days."""
    d = np.asarray(difference, dtype=float)
    n_days = len(d)
    running = np.cumsum(d) / np.arange(1, n_days + 1) if n_days else np.array([])
    lower: list[float | None] = [None] if n_days else []
    for t in range(2, n_days + 1):
        sigma = math.sqrt(max(float(newey_west_variance(d[:t])), 0.0))
        lower.append(float(running[t - 1] - sigma * mixture_boundary(t, level, horizon_days)))
    return EvidencePath(difference=[float(x) for x in d],
                        running_mean=[float(x) for x in running], lower_bound=lower)
