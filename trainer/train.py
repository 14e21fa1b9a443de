"""Training, top to bottom: loss, jitted steps, the epoch loop, then the sealed bundle.

Shaped like Flax's examples: :func:`loss_fn`, jitted :func:`train_step` / :func:`eval_step`
and :func:`train_and_evaluate`. The steps are pure functions of the model's parameter arrays
and the plain Optax state (the NNX graph is split off once and is static), so the compiled
step is the same XLA computation as a bare ``jax.value_and_grad`` + ``optax`` loop. The
training rows go to the device once per run, shuffled and feature-major, and the model scores
them as columns (``score_columns``: several times faster on XLA's CPU than scoring rows). An
epoch runs as a few :func:`train_steps` calls (a ``lax.scan`` over batches, the last one fused
with the validation loss); the next call is queued before the host reads the last one's
metrics, so the device never waits for logging or early-stopping bookkeeping.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from trainer.bundle import discard_staging, prepare_staging, seal_bundle, write_descriptors
from trainer.checkpoint import make_optimizer, save_checkpoint
from trainer.config import ResolvedConfig, TrainConfig
from trainer.dataset import dataset_fingerprint, open_feed
from trainer.models import Scorer, architecture_summary, count_params, init_params
from trainer.provenance import device_used
from trainer.tracking import MetricsLog, start_wandb_run
from trainer.window import TrainingData, build_training_data, resolve_cutoff

log = logging.getLogger(__name__)

DEADLINE_FRACTION = 0.9
MAX_STEPS_PER_CALL = 128  # the soft deadline is checked at least this often
CALLS_IN_FLIGHT = 2  # calls queued on the device while the host reads the oldest one


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


def _validation_loss(graphdef: nnx.GraphDef, params, x_val, y_val) -> dict[str, jax.Array]:
    """What early stopping reads each epoch: the loss alone (the kept model's scores are
    computed once, at the end)."""
    return {"loss": _evaluate(graphdef, params, x_val, y_val)["loss"]}


@jax.jit
def feature_major(x: jax.Array, y: jax.Array, order: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Rows ``order`` of ``x [rows, features]`` as ``[features, rows]``, and of ``y``.

    The steps slice batches out of the feature-major copy and score them as columns
    (``score_columns`` of :mod:`trainer.models`), the layout XLA's CPU dot runs fastest.
    """
    return jnp.take(x.T, order, axis=1), jnp.take(y, order)


@partial(jax.jit, static_argnums=(0, 1, 2))
def train_steps(
    graphdef: nnx.GraphDef,
    tx: optax.GradientTransformation,
    batch_size: int,
    params,
    opt_state,
    x: jax.Array,
    y: jax.Array,
    starts: jax.Array,
    validation: tuple[jax.Array, jax.Array] | None = None,
):
    """Steps on batches ``start .. start + batch_size - 1`` of ``x [features, rows]`` and
    ``y [rows]``, one per entry of ``starts``, in one call.

    Returns ``(params, opt_state, sum of the batch losses, evaluation)``: with ``validation``
    (``x_val [features, rows]``, ``y_val``), the :func:`eval_step` of the updated parameters,
    in the same call; without it, None.
    """

    def body(carry, start):
        columns = jax.lax.dynamic_slice_in_dim(x, start, batch_size, axis=1)
        targets = jax.lax.dynamic_slice_in_dim(y, start, batch_size)
        params, opt_state, loss = _train_step(graphdef, tx, *carry, columns, targets)
        return (params, opt_state), loss

    (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), starts)
    evaluation = None if validation is None else _validation_loss(graphdef, params, *validation)
    return params, opt_state, losses.sum(), evaluation


@functools.lru_cache(maxsize=32)
def _flat_train_steps(
    graphdef: nnx.GraphDef, tx: optax.GradientTransformation, batch_size: int, treedef: Any
) -> Callable[..., tuple]:
    """:func:`train_steps` over the flat leaves of ``(params, opt_state)``.

    The same computation; but a call flattens a tuple of arrays instead of NNX states and
    hashes no static arguments (the graph, optimizer and batch size are bound here, once per
    fit), which keeps the host's cost per call well under the device's cost per epoch.
    Returns ``(leaves, loss sum, evaluation)``.
    """

    def steps(leaves, x, y, starts, validation):
        params, opt_state = jax.tree.unflatten(treedef, leaves)
        params, opt_state, loss_sum, evaluation = train_steps(
            graphdef, tx, batch_size, params, opt_state, x, y, starts, validation
        )
        return tuple(jax.tree.leaves((params, opt_state))), loss_sum, evaluation

    return jax.jit(steps)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks ``0 .. n-1`` along each row; tied values share their average rank."""
    order = np.argsort(values, axis=1)
    ordered = np.take_along_axis(values, order, axis=1)
    position = np.broadcast_to(np.arange(values.shape[1]), values.shape)
    starts = np.ones(values.shape, dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends = np.ones(values.shape, dtype=bool)
    ends[:, :-1] = starts[:, 1:]
    first = np.maximum.accumulate(np.where(starts, position, 0), axis=1)
    last = np.minimum.accumulate(np.where(ends, position, values.shape[1])[:, ::-1], axis=1)
    ranks = np.empty(values.shape, dtype=np.float64)
    np.put_along_axis(ranks, order, (first + last[:, ::-1]) / 2.0, axis=1)
    return ranks


def rank_ic(scores: np.ndarray, targets: np.ndarray, mask: np.ndarray) -> float:
    """Mean over days of the Spearman correlation across assets (masked entries ignored).

    Ties share their average rank, as in ``scipy.stats.spearmanr``; days with fewer than two
    entries are skipped, and a day whose scores or targets do not vary counts as 0. NumPy on
    the host (XLA's CPU sort is many times slower), all days at once.
    """
    mask = np.asarray(mask, dtype=bool)
    counts = mask.sum(axis=1)
    if not (counts >= 2).any():
        return float("nan")

    def centred_ranks(values: np.ndarray) -> np.ndarray:
        # masked entries rank last, after every kept one, and are then zeroed
        ranks = np.where(mask, _average_ranks(np.where(mask, values, np.inf)), 0.0)
        mean = ranks.sum(axis=1, keepdims=True) / np.maximum(counts, 1)[:, None]
        return np.where(mask, ranks - mean, 0.0)

    a, b = centred_ranks(scores), centred_ranks(targets)
    denom = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    per_day = np.where(denom > 0, (a * b).sum(axis=1) / np.where(denom > 0, denom, 1.0), 0.0)
    return float(per_day[counts >= 2].mean())


class BatchPlan:
    """Which rows each step trains on, cheap enough to redraw every epoch.

    The rows are shuffled once (seeded); each epoch then visits contiguous batches of the
    shuffled rows in a fresh random order, shifted by a random phase, so an epoch costs no
    device-side permutation or gather.
    """

    def __init__(self, n_rows: int, batch_size: int, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(n_rows)
        self.batch_size = min(batch_size, n_rows)
        self.steps = n_rows // self.batch_size
        self.slack = n_rows - self.steps * self.batch_size

    def epoch_starts(self) -> np.ndarray:
        phase = int(self.rng.integers(0, self.slack + 1))
        return (phase + self.rng.permutation(self.steps) * self.batch_size).astype(np.int32)

    def calls(self, epochs: int) -> Iterator[tuple[np.ndarray, bool]]:
        """``(starts, ends_epoch)`` per call: epochs in order, each cut into calls of at most
        ``MAX_STEPS_PER_CALL`` steps."""
        pieces = max(1, -(-self.steps // MAX_STEPS_PER_CALL))
        edges = np.linspace(0, self.steps, pieces + 1).round().astype(int)
        for _ in range(epochs):
            starts = self.epoch_starts()
            for first, last in zip(edges[:-1], edges[1:], strict=True):
                if last > first:
                    yield starts[first:last], bool(last == self.steps)


@dataclass
class _Call:
    """One queued :func:`train_steps` call; its arrays may still be computing."""

    steps: int
    state: tuple  # the leaves of (params, opt_state) after the call
    loss_sum: jax.Array
    evaluation: dict[str, jax.Array] | None  # on the call that ends an epoch


class _CallQueue:
    """:func:`train_steps` calls queued ahead, so the device never waits for the host.

    The deadline is checked before each call is queued and at most ``CALLS_IN_FLIGHT`` are
    queued, so at most that many run past it. Calls still queued when training stops (early
    stopping ruled out their epoch) are dropped unread.
    """

    def __init__(
        self,
        run: Callable[..., tuple],
        calls: Iterator[tuple[np.ndarray, bool]],
        state: tuple,
        *,
        deadline: float,
    ) -> None:
        self._run, self._calls, self._deadline = run, calls, deadline
        self._tip = state
        self._queued: deque[_Call] = deque()
        self.out_of_time = False
        self._fill()

    def _fill(self) -> None:
        while not self.out_of_time and len(self._queued) < CALLS_IN_FLIGHT:
            call = next(self._calls, None)
            if call is None:
                return
            if time.monotonic() >= self._deadline:
                self.out_of_time = True
                return
            starts, ends_epoch = call
            self._tip, loss_sum, evaluation = self._run(self._tip, starts, ends_epoch)
            self._queued.append(_Call(len(starts), self._tip, loss_sum, evaluation))

    def pop(self) -> _Call | None:
        """The oldest call, waited for (the next ones queued meanwhile); None when none is left."""
        if not self._queued:
            return None
        call = self._queued.popleft()
        jax.block_until_ready(call.loss_sum)
        self._fill()
        return call

    @property
    def empty(self) -> bool:
        return not self._queued


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
    model = nnx.merge(graphdef, params)
    optimizer = make_optimizer(model, config)
    opt_state, tx = nnx.as_pure(optimizer.opt_state), optimizer.tx

    plan = BatchPlan(data.y_train.shape[0], config.batch_size, config.seed)
    x, y = feature_major(data.x_train, data.y_train, plan.order.astype(np.int32))
    validation = (
        jnp.asarray(data.x_val[data.val_mask].T),
        jnp.asarray(data.y_val[data.val_mask]),
    )

    leaves, treedef = jax.tree.flatten((params, opt_state))
    steps = _flat_train_steps(graphdef, tx, plan.batch_size, treedef)

    def run(state: tuple, starts: np.ndarray, ends_epoch: bool) -> tuple:
        return steps(state, x, y, starts, validation if ends_epoch else None)

    queue = _CallQueue(run, plan.calls(config.epochs), tuple(leaves), deadline=deadline)
    step = epochs = best_step = best_epoch = 0
    best_state = tuple(leaves)
    best_val_loss, best_train_loss = float("inf"), float("nan")
    stale, stopped_early = 0, None
    epoch_loss_sum, epoch_steps = 0.0, 0
    while (call := queue.pop()) is not None:
        state, evaluation = call.state, call.evaluation
        epoch_loss_sum += float(call.loss_sum)
        epoch_steps += call.steps
        step += call.steps
        if evaluation is None:
            if not (queue.out_of_time and queue.empty):
                continue
            params = jax.tree.unflatten(treedef, state)[0]
            evaluation = eval_step(graphdef, params, *validation)  # the deadline cut it short
        epochs += 1
        train_loss, val_loss = epoch_loss_sum / epoch_steps, float(evaluation["loss"])
        epoch_loss_sum, epoch_steps = 0.0, 0
        metrics.log(step, "train", {"loss": train_loss, "epoch": epochs})
        metrics.log(step, "val", {"loss": val_loss})
        log.info(
            "epoch %d step %d: train loss %.5f, val loss %.5f", epochs, step, train_loss, val_loss
        )
        if val_loss < best_val_loss:
            best_state = state
            best_step, best_epoch, stale = step, epochs, 0
            best_val_loss, best_train_loss = val_loss, train_loss
        else:
            stale += 1
            if stale >= config.early_stopping_patience:
                stopped_early = "patience"
                break
    if stopped_early is None and queue.out_of_time:
        stopped_early = "time_budget"

    # the kept model's scores and rank IC (the initial model's when no epoch ran)
    best_params, best_opt_state = jax.tree.unflatten(treedef, best_state)
    best_evaluation = eval_step(graphdef, best_params, *validation)
    if best_val_loss == float("inf"):
        best_val_loss = float(best_evaluation["loss"])
    scores = np.zeros(data.val_mask.shape, dtype=np.float32)
    scores[data.val_mask] = np.asarray(best_evaluation["scores"])
    val = {
        "loss": best_val_loss,
        "rank_ic": rank_ic(scores, data.y_val, data.val_mask),
    }
    metrics.log(best_step, "val", {"rank_ic": val["rank_ic"]})
    log.info(
        "kept step %d: val loss %.5f, val rank IC %.4f%s",
        best_step,
        val["loss"],
        val["rank_ic"],
        f" (stopped early: {stopped_early})" if stopped_early else "",
    )
    best = {"val_loss": val["loss"], "val_rank_ic": val["rank_ic"], "train_loss": best_train_loss}
    nnx.update(model, best_params)
    nnx.update(optimizer.opt_state, nnx.state(best_opt_state))
    optimizer.step[...] = best_step
    return FitResult(
        model=model,
        optimizer=optimizer,
        best_step=best_step,
        best_epoch=best_epoch,
        steps_completed=step,
        epochs_completed=epochs,
        best=best,
        stopped_early=stopped_early,
        train_seconds=time.monotonic() - started,
    )


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
        feed = open_feed(config.run.datasets_root, train.market)
        cutoff = resolve_cutoff(feed.landed_days(), train.train_cutoff)
        data = build_training_data(feed.returns(end=cutoff), train)
        log.info(
            "training %s %s on %d rows (%s), validating on %d days",
            train.model,
            train.label,
            data.y_train.shape[0],
            data.window(),
            data.x_val.shape[0],
        )
        wandb_run = start_wandb_run(config, extra_config={"window": data.window()})
        metrics = MetricsLog(staging / "tensorboard", wandb_run)
        try:
            fitted = fit(train, data, metrics, deadline=deadline)
        finally:
            metrics.close()
        save_checkpoint(staging / "checkpoint", fitted.model, fitted.optimizer, fitted.best_step)
        metrics.write_tables(staging)
        result = {
            "status": "ok",
            "val_loss": fitted.best["val_loss"],
            "val_rank_ic": fitted.best["val_rank_ic"],
            "train_loss": fitted.best["train_loss"],
            "steps_completed": fitted.steps_completed,
            "epochs_completed": fitted.epochs_completed,
            "best_step": fitted.best_step,
            "stopped_early": fitted.stopped_early,
            "device_used": device_used(),
            "model_params": count_params(fitted.model),
            "train_cutoff": data.train_cutoff.isoformat(),
            "dataset_fingerprint": dataset_fingerprint(train.market),
            "bundle": str(out.absolute()),
        }
        write_descriptors(
            staging,
            config=config,
            data=data,
            fitted=fitted,
            architecture=architecture_summary(fitted.model, train, data.feature_names),
            wall_seconds=time.monotonic() - started,
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
