"""Training, top to bottom: loss, jitted steps, the epoch loop, then the sealed bundle.

Shaped like Flax's examples: :func:`loss_fn`, jitted :func:`train_step` / :func:`eval_step`
and :func:`train_and_evaluate`. The steps are pure functions of the model's parameter arrays
and the plain Optax state (the NNX graph is split off once and is static), so the compiled
step is the same XLA computation as a bare ``jax.value_and_grad`` + ``optax`` loop. The
training rows go to the device once per run, shuffled and feature-major, and the model scores
them as columns (``score_columns``: several times faster on XLA's CPU than scoring rows).
Training runs as a few :func:`train_epochs` calls, each a loop over many epochs on the device
(a ``lax.scan`` over batches, then the validation loss and early stopping's bookkeeping); the
next call is queued before the host reads the last one's metrics, so the device never waits
for logging, and the host does nothing per epoch but log what the device returned.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from trainer.bundle import discard_staging, prepare_staging, seal_bundle, write_descriptors
from trainer.checkpoint import make_optimizer, optimizer_transform, save_checkpoint
from trainer.config import ResolvedConfig, TrainConfig
from trainer.models import Moments, Scorer, architecture_summary, count_params, init_params
from trainer.provenance import device_used
from trainer.sources import open_source
from trainer.tracking import MetricsLog, start_wandb_run
from trainer.window import TrainingData, build_training_data, resolve_cutoff

log = logging.getLogger(__name__)

DEADLINE_FRACTION = 0.9
MAX_STEPS_PER_CALL = 4096  # the soft deadline is checked at least this often
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


class Validation(NamedTuple):
    """The validation rows, feature-major, and (for a linear scorer) their moments, from which
    its validation loss costs ``O(features²)`` instead of a pass over the rows."""

    columns: jax.Array  # [features, rows]
    targets: jax.Array  # [rows]
    moments: Moments | None

    @classmethod
    def of(cls, config: TrainConfig, data: TrainingData) -> Validation:
        columns, targets = data.x_val[data.val_mask].T, data.y_val[data.val_mask]
        moments = Moments.of(columns, targets) if config.model == "linear" else None
        return cls(jnp.asarray(columns), jnp.asarray(targets), moments)


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


@partial(jax.jit, static_argnums=0)
def _init_optimizer(tx: optax.GradientTransformation, params):
    return tx.init(params)


@jax.jit
def feature_major(x: jax.Array, y: jax.Array, order: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Rows ``order`` of ``x [rows, features]`` as ``[features, rows]``, and of ``y``.

    The steps slice batches out of the feature-major copy and score them as columns
    (``score_columns`` of :mod:`trainer.models`), the layout XLA's CPU dot runs fastest.
    """
    return jnp.take(x.T, order, axis=1), jnp.take(y, order)


class Progress(NamedTuple):
    """Training as it stands, carried on the device from call to call: the weights, the
    optimizer, and early stopping's bookkeeping (the best epoch's weights and optimizer)."""

    params: Any
    opt_state: Any
    best_params: Any
    best_opt_state: Any
    best_loss: jax.Array  # validation loss of the best epoch; inf before the first epoch
    best_train_loss: jax.Array
    best_step: jax.Array
    best_epoch: jax.Array
    stale: jax.Array  # epochs since the best one
    step: jax.Array
    epoch: jax.Array
    loss_sum: jax.Array  # the batch losses of the epoch under way
    loss_steps: jax.Array

    @classmethod
    def start(cls, params, opt_state) -> Progress:
        """Before the first epoch. Typed as a call returns it (no weakly typed scalars), so
        every call of a run has the same signature and compiles once."""
        zero = jnp.zeros((), jnp.int32)
        return cls(params, opt_state, params, opt_state, jnp.full((), jnp.inf, jnp.float32),
                   jnp.full((), jnp.nan, jnp.float32), zero, zero, zero, zero, zero,
                   jnp.zeros((), jnp.float32), zero)


def _end_epoch(graphdef: nnx.GraphDef, progress: Progress, validation: Validation
               ) -> tuple[Progress, tuple[jax.Array, jax.Array]]:
    """Validate the weights at the end of an epoch and keep them if they are the best yet;
    returns the progress and the epoch's ``(train loss, validation loss)``."""
    val_loss = _validation_loss(graphdef, progress.params, validation)
    train_loss = progress.loss_sum / jnp.maximum(progress.loss_steps, 1)
    better = val_loss < progress.best_loss

    def keep(new, old):
        return jax.tree.map(lambda a, b: jnp.where(better, a, b), new, old)

    return progress._replace(
        best_params=keep(progress.params, progress.best_params),
        best_opt_state=keep(progress.opt_state, progress.best_opt_state),
        best_loss=jnp.where(better, val_loss, progress.best_loss),
        best_train_loss=jnp.where(better, train_loss, progress.best_train_loss),
        best_step=jnp.where(better, progress.step, progress.best_step),
        best_epoch=jnp.where(better, progress.epoch + 1, progress.best_epoch),
        stale=jnp.where(better, 0, progress.stale + 1),
        epoch=progress.epoch + 1,
        loss_sum=jnp.zeros(()),
        loss_steps=jnp.zeros((), jnp.int32),
    ), (train_loss, val_loss)


end_epoch = jax.jit(_end_epoch, static_argnums=0)
"""``_end_epoch`` on its own: for an epoch the deadline cut short."""


@partial(jax.jit, static_argnums=(0, 1, 2, 3))
def train_epochs(
    graphdef: nnx.GraphDef,
    tx: optax.GradientTransformation,
    batch_size: int,
    ends_epoch: bool,
    progress: Progress,
    x: jax.Array,
    y: jax.Array,
    starts: jax.Array,
    rows: jax.Array,
    patience: jax.Array,
    validation: Validation,
) -> tuple[Progress, jax.Array, tuple[jax.Array, jax.Array]]:
    """The first ``rows`` rows of ``starts [R, S]`` in one call, while early stopping allows.

    Each row is ``S`` steps, on batches ``start .. start + batch_size - 1`` of
    ``x [features, rows]`` and ``y``: a whole epoch, validated after it (``ends_epoch``), or
    the one piece of an epoch too long for a single call (validated only after its last
    piece). Rows stop once ``patience`` epochs have passed without a better validation loss,
    so a call queued after that computes nothing. Returns the progress, ``[rows that ran,
    epochs since the best one]``, and each row's ``(train loss, validation loss)`` (NaN where
    none).
    """

    def epoch(progress: Progress, row: jax.Array) -> Progress:
        def body(carry, start):
            columns = jax.lax.dynamic_slice_in_dim(x, start, batch_size, axis=1)
            targets = jax.lax.dynamic_slice_in_dim(y, start, batch_size)
            params, opt_state, loss = _train_step(graphdef, tx, *carry, columns, targets)
            return (params, opt_state), loss

        carry = (progress.params, progress.opt_state)
        (params, opt_state), losses = jax.lax.scan(body, carry, starts[row])
        return progress._replace(
            params=params, opt_state=opt_state, step=progress.step + starts.shape[1],
            loss_sum=progress.loss_sum + losses.sum(),
            loss_steps=progress.loss_steps + starts.shape[1])

    def running(state) -> jax.Array:
        progress, row, _ = state
        return (row < rows) & (progress.stale < patience)

    def run_row(state):
        progress, row, (train_losses, val_losses) = state
        progress = epoch(progress, row)
        if ends_epoch:
            progress, (train_loss, val_loss) = _end_epoch(graphdef, progress, validation)
            train_losses, val_losses = (train_losses.at[row].set(train_loss),
                                        val_losses.at[row].set(val_loss))
        return progress, row + 1, (train_losses, val_losses)

    nan = jnp.full(starts.shape[0], jnp.nan)
    progress, ran, losses = jax.lax.while_loop(
        running, run_row, (progress, jnp.zeros((), jnp.int32), (nan, nan)))
    return progress, jnp.stack([ran, progress.stale]), losses


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


def centred_ranks(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Each day's average ranks of ``values`` minus their mean, over the entries ``mask``
    keeps (the others are 0)."""
    mask = np.asarray(mask, dtype=bool)
    counts = mask.sum(axis=1)
    # masked entries rank last, after every kept one, and are then zeroed
    ranks = np.where(mask, _average_ranks(np.where(mask, values, np.inf)), 0.0)
    mean = ranks.sum(axis=1, keepdims=True) / np.maximum(counts, 1)[:, None]
    return np.where(mask, ranks - mean, 0.0)


def rank_ic(scores: np.ndarray, targets: np.ndarray, mask: np.ndarray, *,
            target_ranks: np.ndarray | None = None) -> float:
    """Mean over days of the Spearman correlation across assets (masked entries ignored).

    Ties share their average rank, as in ``scipy.stats.spearmanr``; days with fewer than two
    entries are skipped, and a day whose scores or targets do not vary counts as 0. NumPy on
    the host (XLA's CPU sort is many times slower), all days at once. ``target_ranks``:
    ``centred_ranks(targets, mask)``, when already computed.
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

    def calls(self, epochs: int) -> Iterator[_Steps]:
        """The :func:`train_epochs` calls of ``epochs`` epochs, in order, each of at most
        ``MAX_STEPS_PER_CALL`` steps: runs of whole epochs, or, when an epoch is longer than
        that, its pieces."""
        if self.steps <= MAX_STEPS_PER_CALL:
            per_call = MAX_STEPS_PER_CALL // self.steps  # whatever the epochs: one shape
            for first in range(0, epochs, per_call):
                rows = min(per_call, epochs - first)
                starts = np.zeros((per_call, self.steps), dtype=np.int32)  # padded: one shape
                for row in range(rows):
                    starts[row] = self.epoch_starts()
                yield _Steps(starts, rows, ends_epoch=True)
            return
        pieces = -(-self.steps // MAX_STEPS_PER_CALL)
        edges = np.linspace(0, self.steps, pieces + 1).round().astype(int)
        for _ in range(epochs):
            starts = self.epoch_starts()
            for first, last in zip(edges[:-1], edges[1:], strict=True):
                yield _Steps(starts[None, first:last], 1, ends_epoch=bool(last == self.steps))


@dataclass
class _Steps:
    """The steps of one call: ``rows`` rows of ``starts [R, S]`` (the rest is padding), each
    a whole epoch when ``ends_epoch``, else one piece of an epoch (its last validated)."""

    starts: np.ndarray
    rows: int
    ends_epoch: bool


@dataclass
class _Call:
    """One queued :func:`train_epochs` call; its arrays may still be computing."""

    steps: _Steps
    progress: Progress  # after the call
    status: jax.Array  # [rows that ran, epochs since the best one]
    losses: tuple[jax.Array, jax.Array]


class _CallQueue:
    """:func:`train_epochs` calls queued ahead, so the device never waits for the host.

    The deadline is checked before each call is queued and at most ``CALLS_IN_FLIGHT`` are
    queued, so at most that many run past it. Calls still queued when training stops (early
    stopping ruled out their epochs) are dropped unread.
    """

    def __init__(
        self,
        run: Callable[[Progress, _Steps], tuple],
        calls: Iterator[_Steps],
        progress: Progress,
        *,
        deadline: float,
    ) -> None:
        self._run, self._calls, self._deadline = run, calls, deadline
        self._tip = progress
        self._queued: deque[_Call] = deque()
        self.out_of_time = False
        self._fill()

    def _fill(self) -> None:
        while not self.out_of_time and len(self._queued) < CALLS_IN_FLIGHT:
            steps = next(self._calls, None)
            if steps is None:
                return
            if time.monotonic() >= self._deadline:
                self.out_of_time = True
                return
            self._tip, status, losses = self._run(self._tip, steps)
            self._queued.append(_Call(steps, self._tip, status, losses))

    def pop(self) -> _Call | None:
        """The oldest call, waited for (the next ones queued meanwhile); None when none is left."""
        if not self._queued:
            return None
        call = self._queued.popleft()
        jax.block_until_ready(call.status)
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
    tx = optimizer_transform(config)
    opt_state = _init_optimizer(tx, params)
    plan = BatchPlan(data.y_train.shape[0], config.batch_size, config.seed)
    # The device shuffles the rows while the host builds the validation set.
    x, y = feature_major(data.x_train, data.y_train, plan.order.astype(np.int32))
    validation = Validation.of(config, data)
    patience = np.int32(config.early_stopping_patience)

    def run(progress: Progress, steps: _Steps) -> tuple:
        return train_epochs(graphdef, tx, plan.batch_size, steps.ends_epoch, progress, x, y,
                            steps.starts, np.int32(steps.rows), patience, validation)

    progress = Progress.start(params, opt_state)  # what is kept if no call runs
    queue = _CallQueue(run, plan.calls(config.epochs), progress, deadline=deadline)
    # what the end needs, while the first calls run
    model = nnx.merge(graphdef, params)
    optimizer = make_optimizer(model, config)
    target_ranks = centred_ranks(data.y_val, data.val_mask)
    step, epochs, stopped_early = 0, 0, None
    epoch_open = False  # the last call ended in the middle of an epoch
    while (call := queue.pop()) is not None:
        progress = call.progress
        ran, stale = (int(value) for value in np.asarray(call.status))
        length = call.steps.starts.shape[1]
        train_losses, val_losses = (np.asarray(losses) for losses in call.losses)
        for row in range(ran):
            step += length
            if call.steps.ends_epoch:
                epochs += 1
                _log_epoch(metrics, epochs, step, float(train_losses[row]), float(val_losses[row]))
        epoch_open = not call.steps.ends_epoch
        if stale >= config.early_stopping_patience:
            stopped_early = "patience"
            break
    if stopped_early is None and queue.out_of_time:
        stopped_early = "time_budget"
        if epoch_open:  # the deadline cut an epoch short: validate where it stopped
            progress, (train_loss, val_loss) = end_epoch(graphdef, progress, validation)
            epochs += 1
            _log_epoch(metrics, epochs, step, float(train_loss), float(val_loss))

    # the kept model's scores and rank IC (the initial model's when no epoch ran)
    best_params, best_opt_state = progress.best_params, progress.best_opt_state
    best_evaluation = eval_step(graphdef, best_params, validation.columns, validation.targets)
    best_val_loss = float(progress.best_loss)
    if best_val_loss == float("inf"):
        best_val_loss = float(best_evaluation["loss"])
    best_step, best_epoch = int(progress.best_step), int(progress.best_epoch)
    scores = np.zeros(data.val_mask.shape, dtype=np.float32)
    scores[data.val_mask] = np.asarray(best_evaluation["scores"])
    val = {
        "loss": best_val_loss,
        "rank_ic": rank_ic(scores, data.y_val, data.val_mask, target_ranks=target_ranks),
    }
    metrics.log(best_step, "val", {"rank_ic": val["rank_ic"]})
    log.info(
        "kept step %d: val loss %.5f, val rank IC %.4f%s",
        best_step,
        val["loss"],
        val["rank_ic"],
        f" (stopped early: {stopped_early})" if stopped_early else "",
    )
    best = {
        "val_loss": val["loss"],
        "val_rank_ic": val["rank_ic"],
        "train_loss": float(progress.best_train_loss),
    }
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
            "dataset_fingerprint": dataset["fingerprint"],
            "bundle": str(out.absolute()),
        }
        write_descriptors(
            staging,
            config=config,
            data=data,
            dataset=dataset,
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
