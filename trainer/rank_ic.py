"""The rank information coefficient: each day's Spearman correlation of scores and targets
across assets, averaged over days; what the kept model is judged on at the end of training.

NumPy and pandas on the host (XLA's CPU sort is many times slower), all days at once. Tied
entries share their average rank, as ``scipy.stats.rankdata`` gives it, from pandas, which the
trainer loads anyway: importing SciPy's statistics would cost every training run most of a
second of its start.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def centred_ranks(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Each day's average ranks of ``values`` minus their mean, over the entries ``mask``
    keeps (the others are 0)."""
    mask = np.asarray(mask, dtype=bool)
    counts = mask.sum(axis=1)
    # masked entries rank last, after every kept one, and are then zeroed
    masked = pd.DataFrame(np.where(mask, values, np.inf))
    ranks = np.where(mask, masked.rank(axis=1, method="average").to_numpy(), 0.0)
    mean = ranks.sum(axis=1, keepdims=True) / np.maximum(counts, 1)[:, None]
    return np.where(mask, ranks - mean, 0.0)


def rank_ic(scores: np.ndarray, targets: np.ndarray, mask: np.ndarray, *,
            target_ranks: np.ndarray | None = None) -> float:
    """Mean over days of the Spearman correlation across assets (masked entries ignored).

    Ties share their average rank, as in ``scipy.stats.spearmanr``; days with fewer than two
    entries are skipped, and a day whose scores or targets do not vary counts as 0.
    ``target_ranks``: ``centred_ranks(targets, mask)``, when already computed.
    """
    mask = np.asarray(mask, dtype=bool)
    counts = mask.sum(axis=1)
    if not (counts >= 2).any():
        return float("nan")
    a = centred_ranks(scores, mask)
    b = centred_ranks(targets, mask) if target_ranks is None else target_ranks
    denom = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    per_day = np.where(denom > 0, (a * b).sum(axis=1) / np.where(denom > 0, denom, 1.0), 0.0)
    return float(per_day[counts >= 2].mean())
