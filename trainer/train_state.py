"""Training as it stands on the device, carried from call to call: the weights, the optimizer,
the counters, and early stopping's record of the best epoch so far.

Pure functions of JAX arrays, traced into the device calls: a call's loop updates the state
after each scan over an epoch's batches and again when the epoch is validated.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class BestEpoch(NamedTuple):
    """The epoch with the lowest validation loss so far: what training keeps."""

    params: Any
    opt_state: Any
    val_loss: jax.Array  # inf before the first epoch
    train_loss: jax.Array
    step: jax.Array
    epoch: jax.Array
    stale: jax.Array  # epochs since this one


class TrainState(NamedTuple):
    """The weights and optimizer state, the steps and epochs done, the batch losses of the
    epoch under way, and the best epoch."""

    params: Any
    opt_state: Any
    step: jax.Array
    epoch: jax.Array
    epoch_loss_sum: jax.Array
    epoch_steps: jax.Array
    best: BestEpoch

    @classmethod
    def start(cls, params: Any, opt_state: Any) -> TrainState:
        """Before the first epoch. Typed as a call returns it (no weakly typed scalars), so
        every call of a run has the same signature and compiles once."""
        zero = jnp.zeros((), jnp.int32)
        best = BestEpoch(params, opt_state, jnp.full((), jnp.inf, jnp.float32),
                         jnp.full((), jnp.nan, jnp.float32), zero, zero, zero)
        return cls(params, opt_state, zero, zero, jnp.zeros((), jnp.float32), zero, best)

    def after_steps(self, params: Any, opt_state: Any, losses: jax.Array) -> TrainState:
        """After the steps whose batch losses are ``losses``."""
        return self._replace(
            params=params, opt_state=opt_state, step=self.step + losses.shape[0],
            epoch_loss_sum=self.epoch_loss_sum + losses.sum(),
            epoch_steps=self.epoch_steps + losses.shape[0])

    def end_epoch(self, val_loss: jax.Array) -> tuple[TrainState, jax.Array]:
        """Close the epoch whose weights have validation loss ``val_loss``, keeping them if
        they are the best yet; returns the state and the epoch's mean training loss."""
        train_loss = self.epoch_loss_sum / jnp.maximum(self.epoch_steps, 1)
        best = self.best
        better = val_loss < best.val_loss

        def keep(new, old):
            return jax.tree.map(lambda a, b: jnp.where(better, a, b), new, old)

        best = BestEpoch(
            params=keep(self.params, best.params),
            opt_state=keep(self.opt_state, best.opt_state),
            val_loss=jnp.where(better, val_loss, best.val_loss),
            train_loss=jnp.where(better, train_loss, best.train_loss),
            step=jnp.where(better, self.step, best.step),
            epoch=jnp.where(better, self.epoch + 1, best.epoch),
            stale=jnp.where(better, 0, best.stale + 1),
        )
        return self._replace(
            epoch=self.epoch + 1,
            epoch_loss_sum=jnp.zeros(()),
            epoch_steps=jnp.zeros((), jnp.int32),
            best=best,
        ), train_loss
