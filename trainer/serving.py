"""Serving a bundle: verify it, restore it, score with the same feature code as training.

A process restores each bundle once: ``load_model`` verifies every file against SHA256SUMS on
every call and reuses the model it restored for the same verified bytes (keyed by the digest of
SHA256SUMS). Scoring is one jitted function shared by every model of the same architecture, fed
days in power-of-two buckets, so a long-lived process compiles a handful of shapes, not one per
version and batch size.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from flax import nnx

from trainer.checkpoint import restore_model
from trainer.checksums import IntegrityError, verified_digest
from trainer.config import TrainConfig
from trainer.features import compute_features, feature_names
from trainer.models import Scorer

RESTORED_CACHE_SIZE = 64  # restored bundles kept per process (a few kB of weights each)
_restored: dict[tuple[Path, str], tuple[Scorer, TrainConfig, dict, tuple]] = {}


@partial(jax.jit, static_argnums=0)
def _score(graphdef: nnx.GraphDef, state: nnx.State, features: jax.Array) -> jax.Array:
    return nnx.merge(graphdef, state)(jnp.nan_to_num(features))


def _day_bucket(days: int) -> int:
    """The next power of two: the leading axis is padded to it, to bound recompilation."""
    return 1 << max(days - 1, 0).bit_length()


class Predictor:
    """A restored model: ``predict(features) -> scores``, one jitted call for many days."""

    def __init__(self, model: Scorer, config: TrainConfig, metadata: dict, bundle_dir: Path,
                 split: tuple[nnx.GraphDef, nnx.State] | None = None):
        self.config = config
        self.metadata = metadata
        self.bundle_dir = bundle_dir
        self.feature_names: list[str] = list(metadata["feature_names"])
        self.train_cutoff = dt.date.fromisoformat(metadata["training_window"]["train_cutoff"])
        self.model = model
        self._graphdef, self._state = split if split is not None else nnx.split(model)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Scores for ``[assets, features]`` or ``[days, assets, features]``.

        Missing features (NaN) count as the cross-sectional average (0 after normalisation).
        Higher score: higher expected forward return.
        """
        features = np.asarray(features, dtype=np.float32)
        if features.ndim not in (2, 3) or features.shape[-1] != len(self.feature_names):
            raise ValueError(
                f"features must be [assets, {len(self.feature_names)}] or "
                f"[days, assets, {len(self.feature_names)}] ({', '.join(self.feature_names)}); "
                f"got shape {features.shape}"
            )
        if features.ndim == 2:
            return np.asarray(_score(self._graphdef, self._state, features))
        days = features.shape[0]
        padded = np.zeros((_day_bucket(days), *features.shape[1:]), dtype=np.float32)
        padded[:days] = features
        return np.asarray(_score(self._graphdef, self._state, padded))[:days]

    def features(self, returns: pd.DataFrame) -> np.ndarray:
        """``[days, assets, features]`` from wide daily returns, by the training code."""
        return compute_features(returns.to_numpy(dtype=np.float64), self.config)

    def score_days(
        self, returns: pd.DataFrame, days: Iterable[dt.date] | None = None
    ) -> pd.DataFrame:
        """Scores (index: day, columns: assets) for ``days`` (default: the last day given).

        ``returns`` is the wide history (index: dates, columns: assets) up to at least each
        day to score; a day's features use returns on or before it only.
        """
        index = pd.DatetimeIndex(returns.index)
        wanted = [index[-1]] if days is None else [pd.Timestamp(day) for day in days]
        positions = index.get_indexer(wanted)
        if (positions < 0).any():
            missing = [str(w.date()) for w, p in zip(wanted, positions, strict=True) if p < 0]
            raise KeyError(f"no returns for day(s) {', '.join(missing)}")
        last = int(positions.max())
        features = self.features(returns.iloc[: last + 1])[positions]
        scores = self.predict(features)
        return pd.DataFrame(
            scores, index=pd.DatetimeIndex(wanted, name="date"), columns=returns.columns
        )


def load_model(bundle_dir: str | Path, *, expected_digest: str | None = None) -> Predictor:
    """Verify SHA256SUMS, restore the Orbax checkpoint, return a :class:`Predictor`.

    Raises :class:`trainer.checksums.IntegrityError` when any file differs from its checksum,
    or when SHA256SUMS itself is not the one whose SHA-256 is ``expected_digest`` (a bundle
    replaced by another, sealed one). Every call verifies; a bundle whose verified SHA256SUMS
    this process has restored before is not restored again (the same digest pins the same
    bytes of every file).
    """
    bundle_dir = Path(bundle_dir)
    key = (bundle_dir.resolve(), verified_digest(bundle_dir, expected_digest=expected_digest))
    if key in _restored:
        model, config, metadata, split = _restored[key]
        return Predictor(model, config, metadata, bundle_dir, split)
    metadata = json.loads((bundle_dir / "metadata.json").read_text(encoding="utf-8"))
    config = TrainConfig.model_validate(metadata["train_config"])
    names = feature_names(config)
    if names != metadata["feature_names"]:
        raise IntegrityError(
            f"{bundle_dir}: bundle features {metadata['feature_names']} differ from what this "
            f"trainer computes {names}; retrain with this trainer version"
        )
    model = restore_model(bundle_dir / "checkpoint", config, len(names))
    if len(_restored) >= RESTORED_CACHE_SIZE:
        del _restored[next(iter(_restored))]  # the oldest
    split = nnx.split(model)  # once per restore: predictors of the same bytes share it
    _restored[key] = (model, config, metadata, split)
    return Predictor(model, config, metadata, bundle_dir, split)
