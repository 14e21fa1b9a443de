"""Orbax checkpoints of ``{"model", "optimizer", "step"}``: saved whole, restored by shape.

Saved so that the same state gives the same bytes (a bundle's digest covers every file): one
directory per leaf, named by its path in the tree, without OCDBT (whose data files have random
names) and through the pytree handler alone, not a ``Checkpointer``, which would add a
``_CHECKPOINT_METADATA`` stamped with the time and a ``commit_success.txt`` naming the
directory it was written in. What the ``Checkpointer`` adds is atomicity, which the bundle
already has: it is built in a staging directory and renamed into place once sealed.

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
from etils import epath
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
    """Write the checkpoint into the new directory ``path``; returns once every byte is written.

    No ``finalize``: it merges per-process OCDBT files, of which there are none."""
    directory = epath.Path(Path(path).absolute())
    directory.mkdir(parents=True, exist_ok=False)
    payload = {
        "model": nnx.state(model),
        "optimizer": nnx.state(optimizer),
        "step": jnp.asarray(step, jnp.int32),
    }
    handler = ocp.PyTreeCheckpointHandler(use_ocdbt=False)
    try:
        handler.save(directory, args=ocp.args.PyTreeSave(payload))
    finally:
        handler.close()


def restore_model(path: Path, config: TrainConfig, n_features: int) -> Scorer:
    """Restore the model's weights alone into an abstract model of the config's architecture.

    Reads either layout: per-leaf directories, or the OCDBT checkpoints (with their
    ``_CHECKPOINT_METADATA``) of bundles sealed before saving became reproducible."""
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
