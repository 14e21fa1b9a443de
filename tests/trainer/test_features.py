"""Features see only the past; targets and training rows never pass the cutoff."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trainer.config import MarketConfig, TrainConfig
from trainer.features import (
    WARMUP_DAYS,
    compute_features,
    feature_key,
    feature_names,
    forward_target,
)
from trainer.market import simulate_returns, trading_days
from trainer.window import TARGET_SCALE, build_training_data

MARKET = MarketConfig(name="feat", n_assets=25, n_days=300, initial_days=300)


def _returns() -> np.ndarray:
    return simulate_returns(MARKET)


def test_features_at_t_ignore_everything_after_t() -> None:
    returns = _returns()
    rng = np.random.default_rng(0)
    for config in (TrainConfig(residual_momentum=True), TrainConfig(xsec_demean=False)):
        base = compute_features(returns, config)
        assert base.shape == (300, 25, len(feature_names(config)))
        for t in (WARMUP_DAYS - 1, 180, 298):
            perturbed = returns.copy()
            perturbed[t + 1 :] = rng.standard_t(3, perturbed[t + 1 :].shape) * 0.2
            np.testing.assert_array_equal(compute_features(perturbed, config)[t], base[t])
        assert np.isfinite(base[WARMUP_DAYS - 1 :]).all()


def test_target_is_the_forward_sum_over_the_horizon() -> None:
    returns = _returns()
    config = TrainConfig(forward_days=3, xsec_demean=False)
    target = forward_target(returns, config)
    for t in (0, 100, 296):  # independent: a plain loop over the horizon
        np.testing.assert_allclose(target[t], returns[t + 1 : t + 4].sum(axis=0))
    assert np.isnan(target[297:]).all()
    demeaned = forward_target(returns, config.model_copy(update={"xsec_demean": True}))
    np.testing.assert_allclose(np.nanmean(demeaned[:297], axis=1), 0.0, atol=1e-12)


def test_no_training_row_uses_a_return_after_the_cutoff() -> None:
    returns = _returns()
    dates = trading_days(MARKET)
    cutoff = dates[250].date()
    config = TrainConfig(
        forward_days=5,
        train_days=100,
        validation_days=20,
        train_cutoff=cutoff,
        market=MARKET,
    )
    frame = pd.DataFrame(returns, index=dates)
    data = build_training_data(frame, config)
    assert data.train_cutoff == cutoff
    assert data.validation_days[1] == dates[250 - 5].date()  # its target ends on the cutoff
    assert data.train_days[1] < data.validation_days[0]
    # the last training target ends h days before the first validation target starts
    last_train = dates.get_loc(pd.Timestamp(data.train_days[1]))
    first_val = dates.get_loc(pd.Timestamp(data.validation_days[0]))
    assert last_train + 5 < first_val + 1

    shocked = frame.copy()
    shocked.iloc[251:] = 0.5  # every return after the cutoff changes
    again = build_training_data(shocked, config)
    np.testing.assert_array_equal(again.x_train, data.x_train)
    np.testing.assert_array_equal(again.y_train, data.y_train)
    np.testing.assert_array_equal(again.y_val, data.y_val)

    # the validation targets are exactly the forward sums inside the window
    expected = returns[first_val + 1 : first_val + 6].sum(axis=0)
    expected = (expected - expected.mean()) * TARGET_SCALE
    np.testing.assert_allclose(data.y_val[0], expected, rtol=1e-5, atol=1e-5)


def test_cutoff_between_landed_days_takes_the_last_day_before() -> None:
    dates = trading_days(MARKET)
    saturday = (dates[260] + pd.Timedelta(days=(5 - dates[260].weekday()) % 7)).date()
    config = TrainConfig(train_days=100, validation_days=20, train_cutoff=saturday)
    data = build_training_data(pd.DataFrame(_returns(), index=dates), config)
    assert data.train_cutoff <= saturday and data.train_cutoff.weekday() < 5


def test_configurations_with_the_same_feature_key_get_the_same_features() -> None:
    """The key names every knob the features read: configurations that agree on it get the
    same features, and those that differ get other ones."""
    returns = _returns()
    base = TrainConfig()
    variants = [
        base.model_copy(update=change)
        for change in ({"model": "mlp"}, {"forward_days": 5}, {"learning_rate": 0.1},
                       {"seed": 3}, {"residual_momentum": not base.residual_momentum},
                       {"xsec_demean": not base.xsec_demean},
                       {"residual_momentum": not base.residual_momentum,
                        "xsec_demean": not base.xsec_demean})
    ]
    expected = compute_features(returns, base)
    for config in variants:
        features = compute_features(returns, config)
        same = features.shape == expected.shape and np.array_equal(features, expected,
                                                                   equal_nan=True)
        assert (feature_key(config) == feature_key(base)) == same, config
    assert len({feature_key(config) for config in [base, *variants]}) == 4
