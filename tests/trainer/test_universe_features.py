"""Features on a moving universe and a panel's extra columns (hand-worked cases)."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.config import TrainConfig
from trainer.features import (
    MIN_REPORTED_FRACTION,
    WARMUP_DAYS,
    compute_features,
    eligible,
    feature_key,
    feature_names,
)
from trainer.panel import PanelConfig

PANEL = PanelConfig(name="p", path="/nowhere")


def test_a_new_listing_joins_once_it_has_the_history_the_features_need() -> None:
    days, rng = WARMUP_DAYS + 150, np.random.default_rng(0)
    returns = rng.normal(0, 0.01, (days, 3))
    listed = 100
    returns[:listed, 2] = np.nan  # asset 2 lists on day 100
    returns[200, 1] = np.nan  # asset 1 misses one day
    ok = eligible(returns)
    need = int(np.ceil(MIN_REPORTED_FRACTION * WARMUP_DAYS))
    assert not ok[: WARMUP_DAYS - 1].any()  # nobody before the warm-up
    assert ok[WARMUP_DAYS - 1 :, 0].all()
    assert not ok[200, 1] and ok[201, 1]  # the missing day only
    first = np.flatnonzero(ok[:, 2])[0]
    assert first == listed + need - 1  # after `need` reported days
    features = compute_features(returns, TrainConfig())
    assert np.isnan(features[first - 1, 2]).all() and np.isfinite(features[first, 2]).all()
    assert np.isfinite(features[first - 1, :2]).all()  # the others are unaffected


def test_extra_features_are_normalised_across_assets_and_change_the_key() -> None:
    days, rng = WARMUP_DAYS + 5, np.random.default_rng(1)
    returns = rng.normal(0, 0.01, (days, 4))
    revision = np.tile(np.array([1.0, 2.0, 3.0, 4.0]), (days, 1))
    config = TrainConfig(panel=PANEL, extra_features=("revision",))
    assert feature_names(config)[-1] == "x_revision"
    assert feature_key(config) != feature_key(TrainConfig())
    features = compute_features(returns, config, {"revision": revision})
    z = (revision[0] - revision[0].mean()) / revision[0].std()  # by hand
    np.testing.assert_allclose(features[-1, :, -1], z, rtol=1e-6)
    base = compute_features(returns, TrainConfig())
    np.testing.assert_array_equal(features[..., :-1], base)  # the others are unchanged


def test_extra_features_need_their_column_and_a_panel() -> None:
    config = TrainConfig(panel=PANEL, extra_features=("revision",))
    with pytest.raises(ValueError, match="extra feature column 'revision' was not supplied"):
        compute_features(np.zeros((5, 3)), config)
    with pytest.raises(ValueError, match="extra_features need a panel source"):
        TrainConfig(extra_features=("revision",))
    with pytest.raises(ValueError, match="name a column twice"):
        TrainConfig(panel=PANEL, extra_features=("a", "a"))


def test_a_synthetic_identity_is_unchanged_by_the_new_fields() -> None:
    """Versions trained on the bundled market keep their fingerprints."""
    identity = TrainConfig().identity()
    assert "panel" not in identity and "extra_features" not in identity
    panel_identity = TrainConfig(panel=PANEL, extra_features=("revision",)).identity()
    assert panel_identity["market"] == {"kind": "panel", "name": "p", "format": "parquet"}
    assert panel_identity["extra_features"] == ["revision"]
