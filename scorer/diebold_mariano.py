"""Diebold–Mariano test on the daily net difference, Newey–West variance, HLN correction.

DM = d̄ / sqrt(Ω/T) with Ω the Newey–West long-run variance (Bartlett kernel); the
Harvey–Leybourne–Newbold (1997) correction for one-day horizons multiplies it by
sqrt((T + 1 − 2h + h(h − 1)/T)/T), h = 1, and compares it with Student-t, T − 1 d.o.f.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import t as student_t

from scorer.newey_west import bartlett_lags, newey_west_variance


@dataclass(frozen=True)
class DieboldMariano:
    statistic: float  # HLN-corrected
    pvalue: float  # two-sided: equal expected net
    pvalue_greater: float  # one-sided: the challenger's expected net is higher
    lags: int


def diebold_mariano(d: np.ndarray, lags: int | None = None, horizon: int = 1) -> DieboldMariano:
    """DM test of E[d] = 0 for d = net(challenger) − net(champion)."""
    d = np.asarray(d, dtype=float)
    n_days = d.shape[0]
    if n_days < 2:
        raise ValueError("the Diebold–Mariano test needs at least two days")
    lags = bartlett_lags(n_days) if lags is None else lags
    omega = float(newey_west_variance(d, lags))
    mean = float(d.mean())
    if omega <= 0:
        statistic = math.copysign(math.inf, mean) if mean != 0 else 0.0
    else:
        hln = math.sqrt((n_days + 1 - 2 * horizon + horizon * (horizon - 1) / n_days) / n_days)
        statistic = hln * mean / math.sqrt(omega / n_days)
    return DieboldMariano(
        statistic=statistic,
        pvalue=float(2 * student_t.sf(abs(statistic), n_days - 1)),
        pvalue_greater=float(student_t.sf(statistic, n_days - 1)),
        lags=lags,
    )
