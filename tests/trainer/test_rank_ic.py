"""The rank IC against SciPy's Spearman correlation, ties and masked entries included."""

from __future__ import annotations

import numpy as np
import scipy.stats

from tests.conftest import imported_by
from trainer.rank_ic import rank_ic


def test_rank_ic_matches_scipy_spearman() -> None:
    rng = np.random.default_rng(3)
    scores, targets = rng.normal(size=(6, 30)), rng.normal(size=(6, 30))
    targets += 0.5 * scores
    mask = np.ones((6, 30), dtype=bool)
    mask[2, :5] = False
    expected = np.mean(
        [
            scipy.stats.spearmanr(s[m], t[m]).statistic
            for s, t, m in zip(scores, targets, mask, strict=True)
        ]
    )
    got = rank_ic(scores, targets, mask)
    assert abs(got - expected) < 1e-5


def test_rank_ic_averages_tied_ranks_like_scipy() -> None:
    rng = np.random.default_rng(5)
    scores = rng.integers(0, 4, size=(8, 25)).astype(np.float32)  # many ties
    targets = np.round(rng.normal(size=(8, 25)), 1)
    mask = rng.random((8, 25)) > 0.2
    mask[3, 2:] = False  # a day with too few entries is skipped
    scores[5] = 1.0  # a day whose scores do not vary counts as 0
    expected = []
    for s, t, m in zip(scores, targets, mask, strict=True):
        if m.sum() < 2:
            continue
        same = np.ptp(s[m]) == 0 or np.ptp(t[m]) == 0
        expected.append(0.0 if same else scipy.stats.spearmanr(s[m], t[m]).statistic)
    assert abs(rank_ic(scores, targets, mask) - np.mean(expected)) < 1e-9
    assert np.isnan(rank_ic(scores, targets, np.zeros_like(mask)))


def test_tied_ranks_need_no_scipy() -> None:
    """Every training run ranks its validation scores: without importing SciPy's statistics."""
    loaded, _ = imported_by(
        "import numpy as np\nfrom trainer.rank_ic import centred_ranks\n"
        "ranks = centred_ranks(np.array([[1.0, 1.0, 2.0, 0.5]]), np.ones((1, 4), bool))\n"
        "assert ranks.tolist() == [[0.0, 0.0, 1.5, -1.5]], ranks", ["scipy"])
    assert loaded == []
