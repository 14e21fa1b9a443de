"""Training: deterministic weights, the loop against a plain one, early stopping, the soft
deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from trainer import batch_plan, call_queue, train
from trainer.batch_plan import BatchPlan
from trainer.checkpoint import make_optimizer
from trainer.config import ResolvedConfig
from trainer.dataset import open_feed
from trainer.models import Moments, build_model, init_params
from trainer.train import fit, train_and_evaluate, train_step
from trainer.window import TrainingData, build_training_data


class _Recorder:
    def __init__(self) -> None:
        self.rows: list[tuple[int, str, str, float]] = []

    def log(self, step: int, split: str, values: dict) -> None:
        self.rows += [(step, split, metric, value) for metric, value in values.items()]

    def series(self, split: str, metric: str) -> list[float]:
        return [v for _, s, m, v in self.rows if (s, m) == (split, metric)]


def _data(config: ResolvedConfig) -> TrainingData:
    feed = open_feed(config.run.datasets_root, config.train.market)
    return build_training_data(feed.returns(), config.train)


def _fit(config: ResolvedConfig, metrics: _Recorder | None = None):
    data = _data(config)
    metrics = metrics or _Recorder()
    return fit(config.train, data, metrics, deadline=time.monotonic() + 600), data


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


def test_compiled_initialisation_gives_build_models_weights(
    make_config: Callable[..., ResolvedConfig],
) -> None:
    for config in (make_config(model="linear", seed=3), make_config(model="mlp", seed=2**40)):
        graphdef, params = init_params(config.train, 6)
        model = build_model(config.train, 6)
        assert graphdef == nnx.graphdef(model)
        for a, b in zip(jax.tree.leaves(params), _weights(model), strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("model", ["linear", "mlp"])
def test_scoring_columns_is_the_same_function_with_the_same_gradients(
    model: str, make_config: Callable[..., ResolvedConfig]
) -> None:
    """Training scores feature-major columns; serving scores rows: the same model either way."""
    scorer = build_model(make_config(model=model, seed=5).train, 6)
    rows = np.random.default_rng(0).normal(size=(257, 6)).astype(np.float32)
    targets = np.random.default_rng(1).normal(size=257).astype(np.float32)
    np.testing.assert_allclose(scorer.score_columns(rows.T), scorer(rows), rtol=1e-5, atol=1e-6)
    graphdef, params = nnx.split(scorer, nnx.Param)

    def loss(params, score):
        return jnp.mean((score(nnx.merge(graphdef, params)) - targets) ** 2)

    by_columns = jax.grad(loss)(params, lambda m: m.score_columns(rows.T))
    by_rows = jax.grad(loss)(params, lambda m: m(rows))
    for a, b in zip(jax.tree.leaves(by_columns), jax.tree.leaves(by_rows), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_a_linear_scorers_squared_error_from_moments_is_the_sum_over_the_rows(
    make_config: Callable[..., ResolvedConfig],
) -> None:
    """Validation reads a linear scorer's loss off the rows' moments: the same number."""
    rng = np.random.default_rng(4)
    columns = rng.standard_t(4, size=(6, 5000)).astype(np.float32)
    targets = (3.0 + 5.0 * rng.standard_t(4, size=5000)).astype(np.float32)  # a large mean
    moments = Moments.of(columns, targets)
    for seed in range(3):
        scorer = build_model(make_config(model="linear", seed=seed).train, 6)
        nnx.update(scorer, jax.tree.map(lambda w: 20 * w, nnx.state(scorer, nnx.Param)))
        scores = np.asarray(scorer.score_columns(columns), dtype=np.float64)
        expected = np.sum((scores - targets) ** 2)
        assert float(scorer.squared_error(moments)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    ("model", "calls"),
    [("linear", "pieces of epochs"), ("mlp", "pieces of epochs"), ("linear", "runs of epochs")],
)
def test_fit_matches_a_plain_loop_of_single_steps(
    model: str, calls: str, make_config: Callable[..., ResolvedConfig],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The queued calls train exactly the batches a plain loop would, in order, whether a call
    holds a piece of an epoch or several epochs (the last call padded)."""
    config = make_config(model=model, epochs=4, early_stopping_patience=100)
    data = _data(config)
    plan = BatchPlan(data.y_train.shape[0], config.train.batch_size, config.train.seed)
    # several calls per epoch, or three epochs a call (4 epochs: the second call is padded)
    monkeypatch.setattr(batch_plan, "MAX_STEPS_PER_CALL", 4 if calls == "pieces of epochs"
                        else 3 * plan.steps + 1)
    assert plan.steps > 2 * 4
    metrics = _Recorder()
    fitted = fit(config.train, data, metrics, deadline=time.monotonic() + 600)

    # the reference: one jitted step per batch, in the plan's order, synchronously
    graphdef, params = init_params(config.train, data.x_train.shape[1])
    optimizer = make_optimizer(nnx.merge(graphdef, params), config.train)
    opt_state, tx = nnx.as_pure(optimizer.opt_state), optimizer.tx
    x, y = data.x_train[plan.order], data.y_train[plan.order]
    per_epoch, val_losses = [], []
    x_val, y_val = data.x_val[data.val_mask], data.y_val[data.val_mask]
    for _ in range(config.train.epochs):
        for start in plan.epoch_starts():
            rows = slice(start, start + plan.batch_size)
            params, opt_state, _ = train_step(graphdef, tx, params, opt_state, x[rows].T,
                                              y[rows])
        per_epoch.append(params)
        scores = np.asarray(nnx.merge(graphdef, params)(x_val), dtype=np.float64)
        val_losses.append(float(np.mean((scores - y_val) ** 2)))

    assert fitted.steps_completed == config.train.epochs * plan.steps
    assert [step for step, split, metric, _ in metrics.rows if (split, metric) == ("val", "loss")
            ] == [plan.steps * (epoch + 1) for epoch in range(config.train.epochs)]
    np.testing.assert_allclose(metrics.series("val", "loss"), val_losses, rtol=1e-4)
    assert fitted.best_epoch == int(np.argmin(val_losses)) + 1
    assert fitted.best_step == fitted.best_epoch * plan.steps
    expected = per_epoch[fitted.best_epoch - 1]
    for a, b in zip(_weights(fitted.model), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert int(fitted.optimizer.step[...]) == fitted.best_step


def _recorded_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """The positional arguments of every ``train_epochs`` call ``fit`` queues, as it queues
    them (the calls still run)."""
    calls: list[tuple] = []
    real_train_epochs = train.train_epochs

    def recording(*args, **kwargs):
        calls.append(args)
        return real_train_epochs(*args, **kwargs)

    monkeypatch.setattr(train, "train_epochs", recording)
    return calls


def test_every_call_of_a_run_has_the_same_signature(
    make_config: Callable[..., ResolvedConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The state a call starts from is typed like the one it returns (no weakly typed
    scalars at the start), so a run of many calls compiles ``train_epochs`` once, not twice."""
    config = make_config(epochs=6, early_stopping_patience=100)
    data = _data(config)
    plan = BatchPlan(data.y_train.shape[0], config.train.batch_size, config.train.seed)
    monkeypatch.setattr(batch_plan, "MAX_STEPS_PER_CALL", 2 * plan.steps)  # 3 calls of 2 epochs
    calls = _recorded_calls(monkeypatch)
    fit(config.train, data, _Recorder(), deadline=time.monotonic() + 600)
    signatures = [[(np.shape(a), a.dtype, getattr(a, "weak_type", False))
                   for a in jax.tree.leaves(args[4:])] for args in calls]  # the arrays passed
    assert len(signatures) == 3
    assert signatures[1] == signatures[0] == signatures[2]


@pytest.mark.parametrize("epochs_per_call", [None, 2, 0])  # None: the default; 0: pieces
def test_early_stopping_keeps_the_best_epoch(
    epochs_per_call: int | None, make_config: Callable[..., ResolvedConfig],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The device stops after ``patience`` epochs without a better validation loss, in the
    middle of a call or between calls, and keeps the best epoch's weights and losses."""
    config = make_config(epochs=60, learning_rate=0.05, early_stopping_patience=2)
    data = _data(config)
    plan = BatchPlan(data.y_train.shape[0], config.train.batch_size, config.train.seed)
    if epochs_per_call is not None:
        monkeypatch.setattr(batch_plan, "MAX_STEPS_PER_CALL", max(4, epochs_per_call * plan.steps))
    metrics = _Recorder()
    fitted = fit(config.train, data, metrics, deadline=time.monotonic() + 600)
    val_losses = metrics.series("val", "loss")
    assert fitted.stopped_early == "patience"
    assert len(val_losses) == fitted.epochs_completed == fitted.best_epoch + 2
    assert fitted.best_epoch == int(np.argmin(val_losses)) + 1
    assert fitted.best_step == fitted.best_epoch * plan.steps
    assert fitted.steps_completed == fitted.epochs_completed * plan.steps
    assert fitted.best["val_loss"] == pytest.approx(min(val_losses), rel=1e-6)
    best_train_loss = metrics.series("train", "loss")[fitted.best_epoch - 1]
    assert fitted.best["train_loss"] == pytest.approx(best_train_loss, rel=1e-6)


def _clock_passes_deadline_once_queued(calls: int, monkeypatch: pytest.MonkeyPatch
                                       ) -> list[tuple]:
    """The trainer's clock reads 0 s until ``calls`` calls of ``train_epochs`` are queued, then
    1000 s (past any deadline here), however fast the machine trains; returns the calls'
    arguments."""
    queued = _recorded_calls(monkeypatch)

    class Clock:
        @staticmethod
        def monotonic() -> float:
            return 0.0 if len(queued) < calls else 1000.0

    monkeypatch.setattr(call_queue, "time", Clock)
    return queued


def test_a_deadline_in_the_middle_of_an_epoch_validates_where_training_stopped(
    make_config: Callable[..., ResolvedConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Epochs in pieces of 4 steps; the clock passes the deadline once 5 calls are queued:
    the first epoch and one piece of the second run, and that piece is validated as an epoch."""
    config = make_config(epochs=10, early_stopping_patience=100)
    data = _data(config)
    plan = BatchPlan(data.y_train.shape[0], config.train.batch_size, config.train.seed)
    monkeypatch.setattr(batch_plan, "MAX_STEPS_PER_CALL", 4)
    pieces = -(-plan.steps // 4)
    queued = _clock_passes_deadline_once_queued(pieces + 1, monkeypatch)
    metrics = _Recorder()
    fitted = fit(config.train, data, metrics, deadline=10.0)
    assert len(queued) == pieces + 1 and not queued[-1][3]  # ends_epoch
    assert fitted.stopped_early == "time_budget"
    assert fitted.epochs_completed == 2 == len(metrics.series("val", "loss"))
    first_piece = int(np.linspace(0, plan.steps, pieces + 1).round()[1])
    assert fitted.steps_completed == plan.steps + first_piece
    assert [step for step, split, _, _ in metrics.rows if split == "train"][-1] == (
        fitted.steps_completed)


def test_soft_deadline_stops_evaluates_and_still_writes_the_bundle(
    make_config: Callable[..., ResolvedConfig], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The clock passes 90 % of the budget once two calls are queued (however fast the
    machine trains): training stops there, and the bundle is still evaluated and written."""
    from trainer import load_model

    config = make_config(epochs=10_000, time_budget_seconds=20, early_stopping_patience=10_000)
    queued = _clock_passes_deadline_once_queued(2, monkeypatch)
    result = train_and_evaluate(config, tmp_path / "bundle", started=0.0)  # deadline at 18 s
    assert len(queued) == 2
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
