"""The equal-weighted cosine (EWC) t-test of H0: E[d] ≤ δ, for the fixed-horizon gate.

docs/gate.md: ν = max(2, ⌊0.4 T^{2/3}⌋), Λ_j = sqrt(2/T) Σ_t d_t cos(π j (t−½)/T) for j = 1..ν,
Ω = mean(Λ_j²), t = sqrt(T)(d̄ − δ)/sqrt(Ω) against Student-t with ν degrees of freedom.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import t as student_t


@dataclass(frozen=True)
class EwcTest:
    statistic: float
    pvalue: float  # one-sided, H1: E[d] > δ
    dof: int
    long_run_variance: float


def ewc_dof(n_days: int) -> int:
    return max(2, int(math.floor(0.4 * n_days ** (2 / 3))))


def ewc_test(d: np.ndarray, margin: float = 0.0) -> EwcTest:
    """One-sided EWC test that the mean of `d` exceeds `margin`."""
    d = np.asarray(d, dtype=float)
    n_days = d.shape[0]
    if n_days < 2:
        raise ValueError("the EWC test needs at least two days")
    dof = ewc_dof(n_days)
    j = np.arange(1, dof + 1)[:, None]
    t = np.arange(1, n_days + 1)[None, :]
    projections = math.sqrt(2.0 / n_days) * (np.cos(math.pi * j * (t - 0.5) / n_days) @ d)
    omega = float(np.mean(projections**2))
    excess = float(d.mean()) - margin
    if omega > 0:
        statistic = math.sqrt(n_days) * excess / math.sqrt(omega)
        pvalue = float(student_t.sf(statistic, dof))
    else:
        statistic = math.copysign(math.inf, excess) if excess != 0 else 0.0
        pvalue = 0.0 if excess > 0 else 1.0
    return EwcTest(statistic=statistic, pvalue=pvalue, dof=dof, long_run_variance=omega)
