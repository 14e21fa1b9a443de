"""The scorers: Flax NNX modules mapping ``[..., features]`` to one score per asset.

Each scorer also scores *columns* (``[features, rows]``, feature-major): the same function,
laid out for XLA's CPU dot. With a handful of features, ``kernelᵀ · columns`` (contracting the
leading axis) runs about three times faster than ``rows · kernel`` (contracting the trailing
one), so training and validation, which hold their rows feature-major, score that way.
"""

from __future__ import annotations

from functools import cache, partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from trainer.config import TrainConfig


class LinearScorer(nnx.Module):
    """A score that is a weighted sum of the features."""

    def __init__(self, n_features: int, *, rngs: nnx.Rngs) -> None:
        self.head = nnx.Linear(n_features, 1, rngs=rngs)

    def __call__(self, features: jax.Array) -> jax.Array:
        return self.head(features)[..., 0]

    def score_columns(self, columns: jax.Array) -> jax.Array:
        """``self(columns.T)`` for ``columns [features, rows]``, computed feature-major."""
        return _dense_columns(self.head, columns)[0]

    def squared_error(self, moments: Moments) -> jax.Array:
        """``Σ (score - target)²`` over the rows ``moments`` sums up, in ``O(features²)``.

        With ``θ = [kernel; bias]`` and ``x̃ = [x; 1]``, the sum is ``θᵀGθ - 2θᵀc + Σy²``: exact
        for a linear score. ``Σy²`` does not depend on the weights and is added last, so the
        part that does is not rounded against it.
        """
        theta = jnp.concatenate([self.head.kernel[...][:, 0], self.head.bias[...]])
        return theta @ (moments.gram @ theta - 2.0 * moments.cross) + moments.targets_squared


class Moments(NamedTuple):
    """The second moments of rows ``x̃ = [features; 1]`` and targets ``y`` that a linear score's
    squared error needs: ``gram = Σ x̃x̃ᵀ``, ``cross = Σ x̃y``, ``targets_squared = Σ y²``
    (summed in float64, stored in float32)."""

    gram: jax.Array
    cross: jax.Array
    targets_squared: jax.Array

    @classmethod
    def of(cls, columns: np.ndarray, targets: np.ndarray) -> Moments:
        """The moments of ``columns [features, rows]`` and ``targets [rows]``."""
        columns = np.asarray(columns, dtype=np.float64)
        targets = np.asarray(targets, dtype=np.float64)
        n_features, n_rows = columns.shape
        gram = np.empty((n_features + 1, n_features + 1))
        gram[:n_features, :n_features] = columns @ columns.T
        gram[:n_features, n_features] = gram[n_features, :n_features] = columns.sum(axis=1)
        gram[n_features, n_features] = n_rows
        cross = np.append(columns @ targets, targets.sum())
        return cls(jnp.asarray(gram, dtype=jnp.float32), jnp.asarray(cross, dtype=jnp.float32),
                   jnp.asarray(targets @ targets, dtype=jnp.float32))


class MLPScorer(nnx.Module):
    """A multilayer perceptron (GELU) with a linear head."""

    def __init__(self, n_features: int, hidden_sizes: tuple[int, ...], *, rngs: nnx.Rngs) -> None:
        sizes = (n_features, *hidden_sizes)
        self.hidden = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        )
        self.head = nnx.Linear(sizes[-1], 1, rngs=rngs)

    def __call__(self, features: jax.Array) -> jax.Array:
        hidden = features
        for layer in self.hidden:
            hidden = nnx.gelu(layer(hidden))
        return self.head(hidden)[..., 0]

    def score_columns(self, columns: jax.Array) -> jax.Array:
        """``self(columns.T)`` for ``columns [features, rows]``, computed feature-major."""
        hidden = columns
        for layer in self.hidden:
            hidden = nnx.gelu(_dense_columns(layer, hidden))
        return _dense_columns(self.head, hidden)[0]


def _dense_columns(layer: nnx.Linear, columns: jax.Array) -> jax.Array:
    """``layer(columns.T).T``: ``[in, rows]`` to ``[out, rows]``, as ``kernelᵀ · columns``."""
    out = jax.lax.dot_general(layer.kernel[...], columns, (((0,), (0,)), ((), ())),
                              precision=layer.precision)
    return out if layer.bias is None else out + layer.bias[...][:, None]


Scorer = LinearScorer | MLPScorer


def _scorer(kind: str, n_features: int, hidden_sizes: tuple[int, ...], rngs: nnx.Rngs) -> Scorer:
    if kind == "linear":
        return LinearScorer(n_features, rngs=rngs)
    return MLPScorer(n_features, hidden_sizes, rngs=rngs)


def build_model(config: TrainConfig, n_features: int, *, seed: int | None = None) -> Scorer:
    """The scorer ``config.model`` names, initialised from ``seed`` (default: ``config.seed``)."""
    rngs = nnx.Rngs(params=config.seed if seed is None else seed)
    return _scorer(config.model, n_features, tuple(config.hidden_sizes), rngs)


@cache
def _graphdef(kind: str, n_features: int, hidden_sizes: tuple[int, ...]) -> nnx.GraphDef:
    return nnx.graphdef(
        nnx.eval_shape(lambda: _scorer(kind, n_features, hidden_sizes, nnx.Rngs(0)))
    )


@partial(jax.jit, static_argnums=(0, 1, 2))
def _initial_params(kind: str, n_features: int, hidden_sizes: tuple[int, ...], key: jax.Array):
    model = _scorer(kind, n_features, hidden_sizes, nnx.Rngs(params=key))
    return nnx.as_pure(nnx.state(model, nnx.Param))


def init_params(config: TrainConfig, n_features: int) -> tuple[nnx.GraphDef, nnx.State]:
    """:func:`build_model`'s graph and initial weights (pure arrays), computed in one call.

    The same weights as ``build_model(config, n_features)``, without a device dispatch (and,
    in a fresh process, a compilation) per initialiser operation.
    """
    hidden_sizes = tuple(config.hidden_sizes) if config.model == "mlp" else ()
    architecture = (config.model, n_features, hidden_sizes)
    return _graphdef(*architecture), _initial_params(*architecture, jax.random.key(config.seed))


def count_params(model: nnx.Module) -> int:
    return int(sum(jnp.size(leaf) for leaf in jax.tree.leaves(nnx.state(model, nnx.Param))))


def architecture_summary(model: nnx.Module, config: TrainConfig, feature_names: list[str]) -> dict:
    """A version-independent description of the model (no weights)."""
    layers = [len(feature_names)]
    if config.model == "mlp":
        layers += list(config.hidden_sizes)
    layers.append(1)
    return {
        "model": config.model,
        "class": type(model).__name__,
        "layer_sizes": layers,
        "activation": "gelu" if config.model == "mlp" else None,
        "params": count_params(model),
        "n_features": len(feature_names),
        "feature_names": list(feature_names),
        "output": f"score ~ forward return over {config.forward_days} day(s), in percent",
    }
