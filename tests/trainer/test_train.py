"""Training: deterministic weights, early stopping, the soft deadline, the rank IC."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np
import scipy.stats
from flax import nnx

from trainer.config import ResolvedConfig
from trainer.dataset import open_feed
from trainer.train import fit, rank_ic, train_and_evaluate
from trainer.window import build_training_data


class _NoMetrics:
    def log(self, step: int, split: str, values: dict) -> None:
        pass


def _fit(config: ResolvedConfig):
    feed = open_feed(config.run.datasets_root, config.train.market)
    data = build_training_data(feed.returns(), config.train)
    return fit(config.train, data, _NoMetrics(), deadline=time.monotonic() + 600), data


def _weights(model: nnx.Module) -> list[np.ndarray]:
    return [np.asarray(leaf) for leaf in jax.tree.leaves(nnx.state(model, nnx.Param))]


def test_same_config_and_data_give_identical_weights(
    make_config: Callable[..., ResolvedConfig],
) -> None:
    config = make_config(model="mlp")
    first, _ = _fit(config)
    second, _ = _fit(config)
    for a, b in zip(_weights(first.model), _weights(second.model), strict=True):
        np.testing.assert_array_equal(a, b)
    other, _ = _fit(make_config(model="mlp", seed=1))
    assert not np.array_equal(_weights(first.model)[0], _weights(other.model)[0])


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


def test_early_stopping_keeps_the_best_epoch(
    make_config: Callable[..., ResolvedConfig],
) -> None:
    fitted, _ = _fit(make_config(epochs=60, learning_rate=0.05, early_stopping_patience=2))
    assert fitted.stopped_early in {"patience", None}
    assert fitted.best_epoch <= fitted.epochs_completed
    if fitted.stopped_early == "patience":
        assert fitted.epochs_completed == fitted.best_epoch + 2


def test_soft_deadline_stops_evaluates_and_still_writes_the_bundle(
    make_config: Callable[..., ResolvedConfig], tmp_path: Path
) -> None:
    from trainer import load_model

    config = make_config(epochs=10_000, time_budget_seconds=20, early_stopping_patience=10_000)
    # the run "started" 17 s ago: 90 % of the 20 s budget leaves one second to train
    result = train_and_evaluate(config, tmp_path / "bundle", started=time.monotonic() - 17)
    assert result["status"] == "ok"
    assert result["stopped_early"] == "time_budget"
    assert result["epochs_completed"] < 10_000
    assert np.isfinite(result["val_loss"])
    assert load_model(tmp_path / "bundle").feature_names


def test_deadline_already_past_keeps_the_initial_model(
    make_config: Callable[..., ResolvedConfig], tmp_path: Path
) -> None:
    config = make_config(time_budget_seconds=1)
    result = train_and_evaluate(config, tmp_path / "bundle", started=time.monotonic() - 5)
    assert result["stopped_early"] == "time_budget"
    assert result["steps_completed"] == 0
    assert (tmp_path / "bundle" / "SHA256SUMS").is_file()
