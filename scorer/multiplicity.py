"""Holm's step-down adjustment for testing several challengers at once."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def holm_adjust(pvalues: Sequence[float], n_tests: int | None = None) -> np.ndarray:
    """Holm-adjusted p-values, in the input order.

    `n_tests` (≥ len(pvalues)) counts hypotheses whose p-values are not known yet (a challenger
    without enough data); they are taken as 1, which keeps the adjustment valid.
    """
    p = np.asarray(pvalues, dtype=float)
    m = len(p) if n_tests is None else int(n_tests)
    if m < len(p):
        raise ValueError(f"n_tests ({m}) is smaller than the number of p-values ({len(p)})")
    if len(p) == 0:
        return p
    order = np.argsort(p, kind="stable")
    factors = m - np.arange(len(p))
    stepped = np.maximum.accumulate(np.minimum(1.0, factors * p[order]))
    adjusted = np.empty_like(p)
    adjusted[order] = stepped
    return adjusted
