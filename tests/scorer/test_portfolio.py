"""Portfolio maths against hand-worked books and scipy's Spearman correlation."""


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import spearmanr

from scorer.costs import LinearCost
from scorer.portfolio import (
    gross_returns,
    quantile_weights,
    rank_ic,
    ranked_book,
    ranks,
    settle_days,
    turnover,
)
from scorer.settings import PortfolioSettings
from tests.conftest import imported_by


def test_top_and_bottom_quintile_hold_one_asset_each():
    weights = quantile_weights(np.array([1.0, 5.0, 3.0, 2.0, 4.0]), 0.2)
    assert weights.tolist() == [-1.0, 1.0, 0.0, 0.0, 0.0]


def test_two_assets_per_side_at_half_weight():
    weights = quantile_weights(np.array([1.0, 5.0, 3.0, 2.0, 4.0]), 0.4)
    assert weights.tolist() == [-0.5, 0.5, 0.0, -0.5, 0.5]


def test_absent_assets_get_no_weight_and_do_not_count():
    scores = np.array([np.nan, 1.0, 2.0, 3.0, 4.0, np.inf])
    weights = quantile_weights(scores, 0.25)  # 4 present assets → 1 per side
    assert weights.tolist() == [0.0, -1.0, 0.0, 0.0, 1.0, 0.0]


def test_ties_are_broken_by_asset_position_and_sides_never_overlap():
    weights = quantile_weights(np.zeros(4), 0.5)
    assert weights.tolist() == [-0.5, -0.5, 0.5, 0.5]


def test_no_book_with_fewer_than_two_assets():
    assert quantile_weights(np.array([np.nan, 3.0, np.nan]), 0.2).tolist() == [0.0, 0.0, 0.0]


def test_days_are_weighted_independently():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(6, 11))
    scores[rng.random(scores.shape) < 0.2] = np.nan
    by_day = np.stack([quantile_weights(row, 0.3) for row in scores])
    np.testing.assert_array_equal(quantile_weights(scores, 0.3), by_day)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, (4, 9), elements=st.integers(-3, 3).map(float)), st.floats(0.05, 0.5))
def test_a_fully_scored_book_matches_the_book_with_an_absent_asset(scores, quantile):
    """Days where every asset is scored take a shortcut; an absent asset (NaN) forces the
    general path, which must place the same weights on the same assets (ties included)."""
    with_absent = np.concatenate([scores, np.full((4, 1), np.nan)], axis=1)
    general = quantile_weights(with_absent, quantile)  # 9 present assets either way
    assert np.isnan(with_absent).any(axis=1).all()
    np.testing.assert_array_equal(quantile_weights(scores, quantile), general[:, :9])


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, (3, 9), elements=st.floats(-5, 5) | st.just(np.nan)),
    st.floats(0.05, 0.5),
)
def test_each_side_sums_to_one(scores, quantile):
    weights = quantile_weights(scores, quantile)
    for day, w in zip(scores, weights, strict=True):
        if np.isfinite(day).sum() >= 2:
            assert w[w > 0].sum() == pytest.approx(1.0)
            assert w[w < 0].sum() == pytest.approx(-1.0)
        else:
            assert not w.any()
        assert not w[~np.isfinite(day)].any()


def test_full_book_replacement_turns_over_four():
    day_one = [1.0, -1.0, 0.0, 0.0]
    day_two = [0.0, 0.0, 1.0, -1.0]
    assert turnover(np.array([day_one, day_two])).tolist() == [0.0, 4.0]


def test_flipping_the_book_also_turns_over_four():
    assert turnover(np.array([[0.5, 0.5, -0.5, -0.5]]), previous=np.array([-0.5, -0.5, 0.5, 0.5]))[
        0
    ] == pytest.approx(4.0)


def test_first_day_is_free_only_without_a_previous_book():
    book = np.array([[0.5, 0.5, -0.5, -0.5]])
    assert turnover(book).tolist() == [0.0]
    assert turnover(book, previous=np.zeros(4)).tolist() == [2.0]


def test_half_the_book_changing_turns_over_two():
    day_one = [0.5, 0.5, -0.5, -0.5, 0.0, 0.0]
    day_two = [0.5, 0.0, -0.5, 0.0, 0.5, -0.5]
    assert turnover(np.array([day_one, day_two]))[1] == pytest.approx(2.0)


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, (5, 8), elements=st.floats(-3, 3)), st.floats(0.1, 0.5))
def test_turnover_lies_between_zero_and_four(scores, quantile):
    daily = turnover(quantile_weights(scores, quantile))
    assert np.all(daily >= 0) and np.all(daily <= 4 + 1e-12)


def test_linear_cost_charges_bps_per_unit_turnover():
    trades = np.array([[1.0, -1.0, -1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    assert LinearCost(10).cost(trades).tolist() == pytest.approx([0.004, 0.0])
    with pytest.raises(ValueError, match="cost_bps"):
        LinearCost(-1)


def test_gross_return_of_a_hand_worked_book():
    weights = np.array([0.5, 0.5, -0.5, -0.5])
    next_returns = np.array([0.01, 0.03, -0.02, 0.00])
    assert gross_returns(weights, next_returns)[0] == pytest.approx(0.03)


def test_missing_return_matters_only_where_held():
    weights = np.array([[1.0, 0.0, -1.0], [1.0, 0.0, -1.0]])
    next_returns = np.array([[0.01, np.nan, 0.02], [np.nan, 0.0, 0.0]])
    gross = gross_returns(weights, next_returns)
    assert gross[0] == pytest.approx(-0.01)
    assert np.isnan(gross[1])


def scipy_rank_ic(scores: np.ndarray, returns: np.ndarray) -> np.ndarray:
    """scipy's Spearman correlation per day, over the assets with both a score and a return."""
    expected = []
    for day_scores, day_returns in zip(scores, returns, strict=True):
        keep = np.isfinite(day_scores) & np.isfinite(day_returns)
        expected.append(spearmanr(day_scores[keep], day_returns[keep]).statistic)
    return np.array(expected)


def test_rank_ic_matches_scipy_spearman_per_day():
    rng = np.random.default_rng(7)
    scores = rng.normal(size=(5, 30))
    returns = 0.3 * scores + rng.normal(size=(5, 30))
    scores[0, :4] = np.nan
    returns[1, 10:13] = np.nan
    scores[2, 5:9] = 1.0  # ties
    ours = rank_ic(scores, returns)
    np.testing.assert_allclose(ours, scipy_rank_ic(scores, returns), rtol=0, atol=1e-12)


def test_rank_ic_from_shared_return_ranks_matches_scipy_on_every_kind_of_day():
    """Versions settled on the same days share the returns' ranks; days where a score is missing
    for an asset whose return is known must be ranked again, without that asset."""
    rng = np.random.default_rng(8)
    scores = rng.normal(size=(6, 30))
    returns = 0.3 * scores + rng.normal(size=(6, 30))
    scores[0, :4] = np.nan  # a return whose score is missing: the shared ranks don't apply
    returns[1, 10:13] = np.nan  # a missing return: the shared ranks skip it already
    returns[2, 5:9] = 0.5  # tied returns
    scores[3, 1:3] = np.nan
    returns[3, 1:3] = np.nan  # both missing together
    shared = ranks(returns)
    ours = rank_ic(scores, returns, return_ranks=shared)
    np.testing.assert_allclose(ours, rank_ic(scores, returns), atol=1e-12)
    np.testing.assert_allclose(ours, scipy_rank_ic(scores, returns), rtol=0, atol=1e-12)
    assert np.isnan(shared[1, 10:13]).all() and np.isfinite(shared[0]).all()
    with pytest.raises(ValueError, match="differ"):
        rank_ic(scores, returns, return_ranks=shared[:3])


def test_ranked_book_is_the_book_and_the_ranks_from_one_sort():
    rng = np.random.default_rng(9)
    scores = rng.normal(size=(7, 40))
    scores[1, :5] = np.nan  # absent assets
    scores[2, 3:9] = 0.25  # ties
    scores[3, :] = 1.0  # all tied
    scores[4, 2:] = np.nan  # too few for a book
    scores[5, 10] = np.inf
    for quantile in (0.1, 0.25, 0.5):
        weights, score_ranks = ranked_book(scores, quantile)
        np.testing.assert_array_equal(weights, quantile_weights(scores, quantile))
        np.testing.assert_array_equal(score_ranks, ranks(scores))
    weights, score_ranks = ranked_book(scores[2], 0.1)  # one day
    np.testing.assert_array_equal(weights, quantile_weights(scores[2], 0.1))
    np.testing.assert_array_equal(score_ranks, ranks(scores[2])[0])


def test_rank_ic_from_shared_score_ranks_matches_scipy_on_every_kind_of_day():
    """A version's scores' ranks come with its book; days where a return is missing for an asset
    whose score is known must be ranked again, without that asset."""
    rng = np.random.default_rng(10)
    scores = rng.normal(size=(5, 30))
    returns = 0.3 * scores + rng.normal(size=(5, 30))
    returns[0, :4] = np.nan  # a score whose return is missing: the shared ranks don't apply
    scores[1, 10:13] = np.nan  # a missing score: the shared ranks skip it already
    scores[2, 5:9] = 0.5  # tied scores
    _, score_ranks = ranked_book(scores, 0.2)
    ours = rank_ic(scores, returns, score_ranks=score_ranks, return_ranks=ranks(returns))
    np.testing.assert_allclose(ours, rank_ic(scores, returns), atol=1e-12)
    np.testing.assert_allclose(ours, scipy_rank_ic(scores, returns), rtol=0, atol=1e-12)
    flat = np.vstack([np.ones(300), np.arange(300.0)])  # a day whose scores do not vary
    flat_returns = rng.normal(size=(2, 300))
    flat_ic = rank_ic(flat, flat_returns, score_ranks=ranked_book(flat, 0.1)[1],
                      return_ranks=ranks(flat_returns))
    assert np.isnan(flat_ic[0]) and np.isfinite(flat_ic[1])
    with pytest.raises(ValueError, match="score ranks .* differ"):
        rank_ic(scores, returns, score_ranks=score_ranks[:2])


def test_rank_ic_is_undefined_with_fewer_than_two_pairs():
    assert np.isnan(rank_ic(np.array([[1.0, np.nan]]), np.array([[0.1, 0.2]]))[0])


def test_settling_in_batches_equals_settling_at_once():
    rng = np.random.default_rng(11)
    scores = rng.normal(size=(20, 25))
    returns = rng.normal(scale=0.01, size=(20, 25))
    portfolio = PortfolioSettings(quantile=0.2, cost_bps=10)
    whole = settle_days(scores, returns, None, portfolio)
    first = settle_days(scores[:8], returns[:8], None, portfolio)
    rest = settle_days(scores[8:], returns[8:], first.weights[-1], portfolio)
    for name in ("gross", "turnover", "cost", "net", "rank_ic"):
        joined = np.concatenate([getattr(first, name), getattr(rest, name)])
        np.testing.assert_allclose(joined, getattr(whole, name), atol=1e-15)


def test_settled_days_are_net_of_linear_cost():
    scores = np.array([[4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0]])
    returns = np.array([[0.01, 0.0, 0.0, -0.01], [0.0, 0.0, 0.02, 0.0]])
    settled = settle_days(scores, returns, None, PortfolioSettings(quantile=0.25, cost_bps=10))
    assert settled.turnover.tolist() == [0.0, 4.0]
    assert settled.gross.tolist() == pytest.approx([0.02, 0.0])
    assert settled.cost.tolist() == pytest.approx([0.0, 0.004])
    assert settled.net.tolist() == pytest.approx([0.02, -0.004])
    frame = settled.to_frame(["d1", "d2"])
    assert list(frame.columns) == ["gross", "turnover", "cost", "net", "rank_ic"]
    assert frame.loc["d2", "net"] == pytest.approx(-0.004)


def test_a_recorded_book_settles_like_the_computed_one():
    rng = np.random.default_rng(12)
    scores = rng.normal(size=(10, 30))
    returns = rng.normal(scale=0.01, size=(10, 30))
    portfolio = PortfolioSettings(quantile=0.2, cost_bps=10)
    computed = settle_days(scores, returns, None, portfolio)
    recorded = settle_days(scores, returns, None, portfolio,
                           weights=quantile_weights(scores, portfolio.quantile))
    for name in ("gross", "turnover", "cost", "net", "rank_ic"):
        np.testing.assert_array_equal(getattr(recorded, name), getattr(computed, name))
    with pytest.raises(ValueError, match="differ in shape"):
        settle_days(scores, returns, None, portfolio, weights=np.zeros((10, 29)))


def test_tied_ranks_need_no_scipy():
    """A fresh ``shadow run`` ranks tied scores without importing SciPy's statistics."""
    loaded, _ = imported_by("import numpy as np\nfrom scorer.portfolio import ranked_book\n"
                            "weights, ranks = ranked_book(np.array([[1.0, 1.0, 2.0, 0.5]]), 0.25)\n"
                            "assert ranks.tolist() == [[2.5, 2.5, 4.0, 1.0]], ranks", ["scipy"])
    assert loaded == []
