"""Training, top to bottom: the loss, the jitted steps, the device call that runs many
epochs, :func:`fit`, then :func:`train_and_evaluate`, which seals the bundle.

Shaped like Flax's examples: :func:`loss_fn`, jitted :func:`train_step` / :func:`eval_step`
and :func:`train_and_evaluate`. The steps are pure functions of the model's parameter arrays
and the plain Optax state (the NNX graph is split off once and is static), so the compiled
step is the same XLA computation as a bare ``jax.value_and_grad`` + ``optax`` loop. The
training rows go to the device once per run, shuffled and feature-major
(:mod:`trainer.device_data`). Training runs as a few :func:`train_epochs` calls, each a loop
over many epochs on the device (a ``lax.scan`` over batches, then the validation loss and
early stopping's bookkeeping, :mod:`trainer.train_state`), cut as :mod:`trainer.batch_plan`
says; the next call is queued before the host reads the last one's metrics
(:mod:`trainer.call_queue`), so the device never waits for logging, and the host does nothing
per epoch but log what the device returned. The kept model is reported with its rank IC
(:mod:`trainer.rank_ic`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from trainer.batch_plan import BatchPlan, CallBatches
from trainer.bundle import discard_staging, prepare_staging, seal_bundle, write_descriptors
from trainer.call_queue import CallQueue
from trainer.checkpoint import make_optimizer, optimizer_transform, save_checkpoint
from trainer.config import ResolvedConfig, TrainConfig
from trainer.device_data import Validation, feature_major
from trainer.models import Scorer, architecture_summary, count_params, init_params
from trainer.provenance import device_used
from trainer.rank_ic import centred_ranks, rank_ic
from trainer.sources import open_source
from trainer.tracking import MetricsLog, start_wandb_run
from trainer.train_state import TrainState
from trainer.window import TrainingData, build_training_data, resolve_cutoff

log = logging.getLogger(__name__)

DEADLINE_FRACTION = 0.9


def loss_fn(model: Scorer, columns: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean squared error of the scores of ``columns [features, rows]`` against the (percent)
    forward returns."""
    return jnp.mean((model.score_columns(columns) - targets) ** 2)


def _params_loss(params: nnx.State, graphdef: nnx.GraphDef, columns, targets) -> jax.Array:
    return loss_fn(nnx.merge(graphdef, params), columns, targets)


def _train_step(
    graphdef: nnx.GraphDef, tx: optax.GradientTransformation, params, opt_state, columns, targets
):
    loss, grads = jax.value_and_grad(_params_loss)(params, graphdef, columns, targets)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


train_step = jax.jit(_train_step, static_argnums=(0, 1))
"""One step on one batch: ``(graphdef, tx, params, opt_state, columns, targets)`` ->
``(params, opt_state, loss)``; ``params`` are the model's pure ``nnx.Param`` arrays and
``columns`` the batch's features, ``[features, rows]``."""


def _evaluate(graphdef: nnx.GraphDef, params, x_val, y_val) -> dict[str, jax.Array]:
    scores = nnx.merge(graphdef, params).score_columns(x_val)
    loss = jnp.sum((scores - y_val) ** 2) / max(y_val.shape[0], 1)
    return {"loss": loss, "scores": scores}


eval_step = jax.jit(_evaluate, static_argnums=0)
"""Validation loss and scores: ``(graphdef, params, x_val [features, rows], y_val [rows])``."""


def _validation_loss(graphdef: nnx.GraphDef, params, validation: Validation) -> jax.Array:
    """What early stopping reads each epoch: the loss alone (the kept model's scores are
    computed once, at the end)."""
    if validation.moments is None:
        return _evaluate(graphdef, params, validation.columns, validation.targets)["loss"]
    model = nnx.merge(graphdef, params)
    return model.squared_error(validation.moments) / max(validation.targets.shape[0], 1)


def _end_epoch(graphdef: nnx.GraphDef, state: TrainState, validation: Validation
               ) -> tuple[TrainState, tuple[jax.Array, jax.Array]]:
    """Validate the weights at the end of an epoch and keep them if they are the best yet;
    returns the state and the epoch's ``(train loss, validation loss)``."""
    val_loss = _validation_loss(graphdef, state.params, validation)
    state, train_loss = state.end_epoch(val_loss)
    return state, (train_loss, val_loss)


end_epoch = jax.jit(_end_epoch, static_argnums=0)
"""``_end_epoch`` on its own: for an epoch the deadline cut short."""


@partial(jax.jit, static_argnums=0)
def _init_optimizer(tx: optax.GradientTransformation, params):
    return tx.init(params)


@partial(jax.jit, static_argnums=(0, 1, 2, 3))
def train_epochs(
    graphdef: nnx.GraphDef,
    tx: optax.GradientTransformation,
    batch_size: int,
    ends_epoch: bool,
    state: TrainState,
    x: jax.Array,
    y: jax.Array,
    starts: jax.Array,
    rows: jax.Array,
    patience: jax.Array,
    validation: Validation,
) -> tuple[TrainState, jax.Array, tuple[jax.Array, jax.Array]]:
    """One device call: the first ``rows`` rows of ``starts [R, S]``, while early stopping
    allows.

    Each row is ``S`` steps, on batches ``start .. start + batch_size - 1`` of
    ``x [features, rows]`` and ``y``: a whole epoch, validated after it (``ends_epoch``), or
    the one piece of an epoch too long for a single call (validated only after its last
    piece). Rows stop once ``patience`` epochs have passed without a better validation loss,
    so a call queued after that computes nothing. Returns the state, ``[rows that ran,
    epochs since the best one]``, and each row's ``(train loss, validation loss)`` (NaN where
    none).
    """

    def run_batches(state: TrainState, row: jax.Array) -> TrainState:
        def body(carry, start):
            columns = jax.lax.dynamic_slice_in_dim(x, start, batch_size, axis=1)
            targets = jax.lax.dynamic_slice_in_dim(y, start, batch_size)
            params, opt_state, loss = _train_step(graphdef, tx, *carry, columns, targets)
            return (params, opt_state), loss

        carry = (state.params, state.opt_state)
        (params, opt_state), losses = jax.lax.scan(body, carry, starts[row])
        return state.after_steps(params, opt_state, losses)

    def running(loop) -> jax.Array:
        state, row, _ = loop
        return (row < rows) & (state.best.stale < patience)

    def run_row(loop):
        state, row, (train_losses, val_losses) = loop
        state = run_batches(state, row)
        if ends_epoch:
            state, (train_loss, val_loss) = _end_epoch(graphdef, state, validation)
            train_losses, val_losses = (train_losses.at[row].set(train_loss),
                                        val_losses.at[row].set(val_loss))
        return state, row + 1, (train_losses, val_losses)

    nan = jnp.full(starts.shape[0], jnp.nan)
    state, ran, losses = jax.lax.while_loop(
        running, run_row, (state, jnp.zeros((), jnp.int32), (nan, nan)))
    return state, jnp.stack([ran, state.best.stale]), losses


@dataclass
class FitResult:
    model: Scorer
    optimizer: nnx.Optimizer
    best_step: int
    best_epoch: int
    steps_completed: int
    epochs_completed: int
    best: dict[str, float]  # val_loss, val_rank_ic, train_loss at the best epoch
    stopped_early: str | None  # "time_budget", "patience" or None
    train_seconds: float


def fit(
    config: TrainConfig, data: TrainingData, metrics: MetricsLog, *, deadline: float
) -> FitResult:
    """Train with early stopping; stop at ``deadline`` (``time.monotonic()``) whatever happens.

    Returns the model and optimizer of the epoch with the lowest validation loss.
    """
    started = time.monotonic()
    graphdef, params = init_params(config, data.x_train.shape[1])
    tx = optimizer_transform(config)
    opt_state = _init_optimizer(tx, params)
    plan = BatchPlan(data.y_train.shape[0], config.batch_size, config.seed)
    # The device shuffles the rows while the host builds the validation set.
    x, y = feature_major(data.x_train, data.y_train, plan.order.astype(np.int32))
    validation = Validation.of(config, data)
    patience = np.int32(config.early_stopping_patience)

    def run(state: TrainState, batches: CallBatches) -> tuple:
        return train_epochs(graphdef, tx, plan.batch_size, batches.ends_epoch, state, x, y,
                            batches.starts, np.int32(batches.rows), patience, validation)

    state = TrainState.start(params, opt_state)  # what is kept if no call runs
    queue = CallQueue(run, plan.calls(config.epochs), state, deadline=deadline)
    # what the end needs, while the first calls run
    model = nnx.merge(graphdef, params)
    optimizer = make_optimizer(model, config)
    target_ranks = centred_ranks(data.y_val, data.val_mask)
    step, epochs, stopped_early = 0, 0, None
    epoch_open = False  # the last call ended in the middle of an epoch
    while (call := queue.pop()) is not None:
        state = call.state
        ran, stale = (int(value) for value in np.asarray(call.status))
        length = call.batches.starts.shape[1]
        train_losses, val_losses = (np.asarray(losses) for losses in call.losses)
        for row in range(ran):
            step += length
            if call.batches.ends_epoch:
                epochs += 1
                _log_epoch(metrics, epochs, step, float(train_losses[row]), float(val_losses[row]))
        epoch_open = not call.batches.ends_epoch
        if stale >= config.early_stopping_patience:
            stopped_early = "patience"
            break
    if stopped_early is None and queue.out_of_time:
        stopped_early = "time_budget"
        if epoch_open:  # the deadline cut an epoch short: validate where it stopped
            state, (train_loss, val_loss) = end_epoch(graphdef, state, validation)
            epochs += 1
            _log_epoch(metrics, epochs, step, float(train_loss), float(val_loss))

    # the kept model's scores and rank IC (the initial model's when no epoch ran)
    best = state.best
    best_evaluation = eval_step(graphdef, best.params, validation.columns, validation.targets)
    best_val_loss = float(best.val_loss)
    if best_val_loss == float("inf"):
        best_val_loss = float(best_evaluation["loss"])
    best_step, best_epoch = int(best.step), int(best.epoch)
    scores = np.zeros(data.val_mask.shape, dtype=np.float32)
    scores[data.val_mask] = np.asarray(best_evaluation["scores"])
    val_rank_ic = rank_ic(scores, data.y_val, data.val_mask, target_ranks=target_ranks)
    metrics.log(best_step, "val", {"rank_ic": val_rank_ic})
    log.info(
        "kept step %d: val loss %.5f, val rank IC %.4f%s",
        best_step,
        best_val_loss,
        val_rank_ic,
        f" (stopped early: {stopped_early})" if stopped_early else "",
    )
    nnx.update(model, best.params)
    nnx.update(optimizer.opt_state, nnx.state(best.opt_state))
    optimizer.step[...] = best_step
    return FitResult(
        model=model,
        optimizer=optimizer,
        best_step=best_step,
        best_epoch=best_epoch,
        steps_completed=step,
        epochs_completed=epochs,
        best={"val_loss": best_val_loss, "val_rank_ic": val_rank_ic,
              "train_loss": float(best.train_loss)},
        stopped_early=stopped_early,
        train_seconds=time.monotonic() - started,
    )


def _log_epoch(metrics: MetricsLog, epoch: int, step: int, train_loss: float, val_loss: float
               ) -> None:
    metrics.log(step, "train", {"loss": train_loss, "epoch": epoch})
    metrics.log(step, "val", {"loss": val_loss})
    log.info("epoch %d step %d: train loss %.5f, val loss %.5f", epoch, step, train_loss, val_loss)


def train_and_evaluate(
    config: ResolvedConfig, workdir: str | Path, *, started: float | None = None
) -> dict[str, Any]:
    """Train one model from ``config`` and seal its bundle at ``workdir``; return the result.

    ``started`` (``time.monotonic()``) is when the run began, for the soft deadline: training
    stops at 90 % of ``time_budget_seconds`` after it, then evaluates and writes the bundle.
    The bundle is built in a temporary sibling of ``workdir`` and renamed into place whole.
    """
    started = time.monotonic() if started is None else started
    deadline = started + DEADLINE_FRACTION * config.train.time_budget_seconds
    train = config.train
    out = Path(workdir)
    staging = prepare_staging(out)
    wandb_run = None
    try:
        source = open_source(config.run.datasets_root, train)
        cutoff = resolve_cutoff(source.landed_days(), train.train_cutoff)
        window = source.training_window(cutoff, train)
        data = build_training_data(window.returns, train, window.extras)
        dataset = source.describe(cutoff, train)
        log.info(
            "training %s %s on %d rows (%s), validating on %d days",
            train.model,
            train.label,
            data.y_train.shape[0],
            data.window(),
            data.x_val.shape[0],
        )
        wandb_run = start_wandb_run(config, extra_config={"window": data.window()})
        metrics = MetricsLog(staging / "tensorboard", wandb_run, stamp=data.train_cutoff)
        try:
            fitted = fit(train, data, metrics, deadline=deadline)
        finally:
            metrics.close()
        save_checkpoint(staging / "checkpoint", fitted.model, fitted.optimizer, fitted.best_step)
        metrics.write_tables(staging)
        result = {
            "status": "ok",
            **fitted.best,  # val_loss, val_rank_ic, train_loss
            "steps_completed": fitted.steps_completed,
            "epochs_completed": fitted.epochs_completed,
            "best_step": fitted.best_step,
            "stopped_early": fitted.stopped_early,
            "device_used": device_used(),
            "model_params": count_params(fitted.model),
            "train_cutoff": data.train_cutoff.isoformat(),
            "dataset_fingerprint": dataset["fingerprint"],
            "training_seconds": round(fitted.train_seconds, 3),
            "bundle": str(out.absolute()),
        }
        write_descriptors(
            staging,
            config=config,
            data=data,
            dataset=dataset,
            fitted=fitted,
            architecture=architecture_summary(fitted.model, train, data.feature_names),
        )
        seal_bundle(staging, out)
    except BaseException:
        discard_staging(staging)
        if wandb_run is not None:
            wandb_run.finish(exit_code=1)
        raise
    result["wall_time_seconds"] = round(time.monotonic() - started, 3)
    if wandb_run is not None:
        wandb_run.summary.update({k: v for k, v in result.items() if k.startswith("val_")})
        wandb_run.finish()
    return result
