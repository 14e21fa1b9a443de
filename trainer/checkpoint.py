"""Orbax checkpoints of ``{"model", "optimizer", "step"}``: saved whole, restored by shape.

Restoring builds an abstract model with ``nnx.eval_shape`` (no weights allocated, nothing
unpickled) and lets Orbax fill that target. Serving needs the model alone, so only the ``model``
subtree is restored (a partial restore: the optimizer's moments are never read).
"""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import optax
import orbax.checkpoint as ocp
from flax import nnx

from trainer.config import TrainConfig
from trainer.models import Scorer, build_model


@functools.cache
def _adamw(learning_rate: float, weight_decay: float) -> optax.GradientTransformation:
    # One transformation object per setting: it is part of the optimizer's graphdef, so reusing
    # it lets jitted steps compiled for one model serve the next model of the same shape.
    return optax.adamw(learning_rate, weight_decay=weight_decay)


def optimizer_transform(config: TrainConfig) -> optax.GradientTransformation:
    """The AdamW transformation :func:`make_optimizer` uses for ``config``."""
    return _adamw(config.learning_rate, config.weight_decay)


def make_optimizer(model: nnx.Module, config: TrainConfig) -> nnx.Optimizer:
    """AdamW over the model's parameters."""
    return nnx.Optimizer(model, optimizer_transform(config), wrt=nnx.Param)


def save_checkpoint(path: Path, model: nnx.Module, optimizer: nnx.Optimizer, step: int) -> None:
    """Write the checkpoint and wait until every byte is on disk."""
    checkpointer = ocp.StandardCheckpointer()
    payload = {
        "model": nnx.state(model),
        "optimizer": nnx.state(optimizer),
        "step": jnp.asarray(step, jnp.int32),
    }
    checkpointer.save(Path(path).absolute(), payload)
    checkpointer.wait_until_finished()
    checkpointer.close()


def restore_model(path: Path, config: TrainConfig, n_features: int) -> Scorer:
    """Restore the model's weights alone into an abstract model of the config's architecture."""
    abstract_model = nnx.eval_shape(lambda: build_model(config, n_features))
    model_def, abstract_state = nnx.split(abstract_model)
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    target = {"model": jax.tree.map(
        lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=device),
        abstract_state)}
    checkpointer = ocp.PyTreeCheckpointer()
    restored = checkpointer.restore(Path(path).absolute(), args=ocp.args.PyTreeRestore(
        item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
        partial_restore=True))
    checkpointer.close()
    return nnx.merge(model_def, restored["model"])
