"""The rows as the device trains and validates on them: feature-major, ``[features, rows]``.

The steps slice batches out of the feature-major training rows and score them as columns
(``score_columns`` of :mod:`trainer.models`), the layout XLA's CPU dot runs fastest.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from trainer.config import TrainConfig
from trainer.models import Moments
from trainer.window import TrainingData


@jax.jit
def feature_major(x: jax.Array, y: jax.Array, order: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Rows ``order`` of ``x [rows, features]`` as ``[features, rows]``, and of ``y``."""
    return jnp.take(x.T, order, axis=1), jnp.take(y, order)


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
