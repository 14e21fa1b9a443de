"""Orbax checkpoints of ``{"model", "optimizer", "step"}``: saved whole, restored by shape.

Restoring builds an abstract model and optimizer with ``nnx.eval_shape`` (no weights allocated,
nothing unpickled) and lets Orbax fill that target.
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


def make_optimizer(model: nnx.Module, config: TrainConfig) -> nnx.Optimizer:
    """AdamW over the model's parameters."""
    return nnx.Optimizer(model, _adamw(config.learning_rate, config.weight_decay), wrt=nnx.Param)


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


def restore_checkpoint(
    path: Path, config: TrainConfig, n_features: int
) -> tuple[Scorer, nnx.Optimizer, int]:
    """Restore model, optimizer and step into an abstract target of the config's architecture."""

    def build() -> tuple[Scorer, nnx.Optimizer]:
        model = build_model(config, n_features)
        return model, make_optimizer(model, config)

    abstract_model, abstract_optimizer = nnx.eval_shape(build)
    target = {
        "model": nnx.state(abstract_model),
        "optimizer": nnx.state(abstract_optimizer),
        "step": jax.ShapeDtypeStruct((), jnp.int32),
    }
    checkpointer = ocp.StandardCheckpointer()
    restored = checkpointer.restore(Path(path).absolute(), target)
    checkpointer.close()
    model_def, _ = nnx.split(abstract_model)
    model = nnx.merge(model_def, restored["model"])
    optimizer = make_optimizer(model, config)
    nnx.update(optimizer, restored["optimizer"])
    return model, optimizer, int(restored["step"])
