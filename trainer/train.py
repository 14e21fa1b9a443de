"""Training, top to bottom: loss, jitted steps, the epoch loop, then the sealed bundle.

Shaped like Flax's examples: :func:`loss_fn`, jitted :func:`train_step` / :func:`eval_step`
and :func:`train_and_evaluate`. The steps are pure functions of ``(graphdef, state)`` (the
split model and optimizer), so each call is one compiled XLA computation; an epoch runs as a
few :func:`train_steps` calls (a ``lax.scan`` over batches) with the soft deadline checked in
between.
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
from flax import nnx

from trainer.bundle import discard_staging, prepare_staging, seal_bundle, write_descriptors
from trainer.checkpoint import make_optimizer, save_checkpoint
from trainer.config import ResolvedConfig, TrainConfig
from trainer.dataset import dataset_fingerprint, open_feed
from trainer.models import Scorer, architecture_summary, build_model, count_params
from trainer.provenance import device_used
from trainer.tracking import MetricsLog, start_wandb_run
from trainer.window import TrainingData, build_training_data, resolve_cutoff

log = logging.getLogger(__name__)

DEADLINE_FRACTION = 0.9
MAX_STEPS_PER_CALL = 128  # the soft deadline is checked at least this often


def loss_fn(model: Scorer, features: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean squared error of the scores against the (percent) forward returns."""
    return jnp.mean((model(features) - targets) ** 2)


def _train_step(graphdef: nnx.GraphDef, state: nnx.State, features, targets):
    model, optimizer = nnx.merge(graphdef, state)
    loss, grads = nnx.value_and_grad(loss_fn)(model, features, targets)
    optimizer.update(model, grads)
    return nnx.state((model, optimizer)), loss


train_step = jax.jit(_train_step, static_argnums=0)
"""One AdamW step on one batch: ``(graphdef, state, features, targets) -> (state, loss)``."""


@partial(jax.jit, static_argnums=(0, 5))
def train_steps(graphdef: nnx.GraphDef, state: nnx.State, x, y, starts, batch_size: int):
    """Several steps in one call; batch ``k`` is rows ``starts[k] .. starts[k]+batch_size-1``."""

    def body(carry, start):
        features = jax.lax.dynamic_slice_in_dim(x, start, batch_size)
        targets = jax.lax.dynamic_slice_in_dim(y, start, batch_size)
        return _train_step(graphdef, carry, features, targets)

    return jax.lax.scan(body, state, starts)


def rank_ic(scores: np.ndarray, targets: np.ndarray, mask: np.ndarray) -> float:
    """Mean over days of the Spearman correlation across assets (masked entries ignored).

    NumPy on the host: XLA's CPU sort makes an on-device version many times slower.
    """
    per_day = []
    for day_scores, day_targets, day_mask in zip(scores, targets, mask, strict=True):
        if day_mask.sum() < 2:
            continue
        a = np.argsort(np.argsort(day_scores[day_mask])).astype(np.float64)
        b = np.argsort(np.argsort(day_targets[day_mask])).astype(np.float64)
        a -= a.mean()
        b -= b.mean()
        denom = np.sqrt((a * a).sum() * (b * b).sum())
        per_day.append((a * b).sum() / denom if denom > 0 else 0.0)
    return float(np.mean(per_day)) if per_day else float("nan")


@partial(jax.jit, static_argnums=0)
def eval_step(graphdef: nnx.GraphDef, state: nnx.State, x_days, y_days, mask) -> dict:
    """Validation loss and scores on ``[days, assets, features]``."""
    model, _ = nnx.merge(graphdef, state)
    scores = model(x_days)
    weight = mask.astype(jnp.float32)
    loss = ((scores - y_days) ** 2 * weight).sum() / jnp.maximum(weight.sum(), 1.0)
    return {"loss": loss, "scores": scores}


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


def _chunk_bounds(steps: int) -> list[tuple[int, int]]:
    pieces = max(1, -(-steps // MAX_STEPS_PER_CALL))
    edges = np.linspace(0, steps, pieces + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def fit(
    config: TrainConfig, data: TrainingData, metrics: MetricsLog, *, deadline: float
) -> FitResult:
    """Train with early stopping; stop at ``deadline`` (``time.monotonic()``) whatever happens.

    Returns the model and optimizer of the epoch with the lowest validation loss.
    """
    started = time.monotonic()
    model = build_model(config, data.x_train.shape[1])
    optimizer = make_optimizer(model, config)
    graphdef, state = nnx.split((model, optimizer))

    plan = BatchPlan(data.y_train.shape[0], config.batch_size, config.seed)
    x = jnp.asarray(data.x_train[plan.order])
    y = jnp.asarray(data.y_train[plan.order])
    x_val, y_val, val_mask = (jnp.asarray(a) for a in (data.x_val, data.y_val, data.val_mask))
    bounds = _chunk_bounds(plan.steps)

    step = epochs = best_step = best_epoch = 0
    best_state, best_val_loss, best_train_loss = state, float("inf"), float("nan")
    stale, stopped_early = 0, None
    for epoch in range(config.epochs):
        starts = plan.epoch_starts()
        losses = []
        for first, last in bounds:
            if time.monotonic() >= deadline:
                stopped_early = "time_budget"
                break
            state, chunk_losses = train_steps(
                graphdef, state, x, y, starts[first:last], plan.batch_size
            )
            losses.append(chunk_losses)
            step += last - first
        if not losses:
            break
        epochs = epoch + 1
        train_loss = float(jnp.concatenate(losses).mean())
        val_loss = float(eval_step(graphdef, state, x_val, y_val, val_mask)["loss"])
        metrics.log(step, "train", {"loss": train_loss, "epoch": epochs})
        metrics.log(step, "val", {"loss": val_loss})
        log.info(
            "epoch %d step %d: train loss %.5f, val loss %.5f", epochs, step, train_loss, val_loss
        )
        if val_loss < best_val_loss:
            best_state, best_step, best_epoch, stale = state, step, epochs, 0
            best_val_loss, best_train_loss = val_loss, train_loss
        else:
            stale += 1
            if stale >= config.early_stopping_patience:
                stopped_early = "patience"
                break
        if stopped_early:
            break

    # the kept model, scored once more for its rank IC
    kept = eval_step(graphdef, best_state, x_val, y_val, val_mask)
    val = {
        "loss": float(kept["loss"]),
        "rank_ic": rank_ic(np.asarray(kept["scores"]), data.y_val, data.val_mask),
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
    model, optimizer = nnx.merge(graphdef, best_state)
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
