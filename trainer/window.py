"""The training window: which days train, which validate, and nothing after ``train_cutoff``.

With cutoff day ``c``, horizon ``h`` and ``V`` validation days (row days are the days features
are taken on; a row's target spans ``t+1..t+h``):

- validation rows: ``c-h-V+1 .. c-h`` (the last ``V`` rows whose targets end by ``c``);
- a gap of ``h`` rows, so no training target overlaps a validation target;
- training rows: from ``c-train_days+1`` (or the first day with full feature history) to
  ``c-2h-V``.

Returns after the cutoff are cut off before any feature or target is computed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from trainer.config import TrainConfig
from trainer.features import WARMUP_DAYS, compute_features, feature_names, forward_target

TARGET_SCALE = 100.0  # targets in percent: better conditioned for the optimiser
MIN_TRAIN_DAYS = 5


class WindowError(ValueError):
    """The landed data cannot supply the requested training window."""


@dataclass(frozen=True)
class TrainingData:
    feature_names: list[str]
    x_train: np.ndarray  # [rows, features] float32
    y_train: np.ndarray  # [rows] float32
    x_val: np.ndarray  # [days, assets, features] float32 (NaN features -> 0)
    y_val: np.ndarray  # [days, assets] float32 (NaN targets -> 0, see val_mask)
    val_mask: np.ndarray  # [days, assets] bool: target and features known
    train_cutoff: dt.date
    train_days: tuple[dt.date, dt.date]  # first and last training row day
    validation_days: tuple[dt.date, dt.date]  # first and last validation row day

    def window(self) -> dict:
        return {
            "train_cutoff": self.train_cutoff.isoformat(),
            "train_rows_from": self.train_days[0].isoformat(),
            "train_rows_to": self.train_days[1].isoformat(),
            "validation_rows_from": self.validation_days[0].isoformat(),
            "validation_rows_to": self.validation_days[1].isoformat(),
            "train_samples": int(self.y_train.shape[0]),
            "validation_samples": int(self.val_mask.sum()),
        }


def resolve_cutoff(landed: list[dt.date], requested: dt.date | None) -> dt.date:
    """The last landed day on or before ``requested`` (None: the last landed day)."""
    if not landed:
        raise WindowError("no market data has landed yet")
    if requested is None:
        return landed[-1]
    eligible = [day for day in landed if day <= requested]
    if not eligible:
        raise WindowError(f"train_cutoff {requested} is before the first landed day {landed[0]}")
    return eligible[-1]


def build_training_data(returns: pd.DataFrame, config: TrainConfig,
                        extras: dict[str, pd.DataFrame] | None = None) -> TrainingData:
    """Training and validation arrays from wide daily returns (index: dates) and the extra
    feature columns ``config.extra_features`` names (same index and columns)."""
    landed = [ts.date() for ts in pd.DatetimeIndex(returns.index)]
    cutoff = resolve_cutoff(landed, config.train_cutoff)
    history = returns.loc[: pd.Timestamp(cutoff)].to_numpy(dtype=np.float64)
    days = landed[: history.shape[0]]
    c, h, v = history.shape[0] - 1, config.forward_days, config.validation_days
    val_first, val_last = c - h - v + 1, c - h
    train_first = max(c - config.train_days + 1, WARMUP_DAYS - 1)
    train_last = val_first - h - 1
    if train_last - train_first + 1 < MIN_TRAIN_DAYS:
        raise WindowError(
            f"not enough history before train_cutoff {cutoff}: {history.shape[0]} landed days "
            f"leave {max(train_last - train_first + 1, 0)} training days after {WARMUP_DAYS - 1} "
            f"warm-up days, {v} validation days and 2 x {h} gap days; land more days or "
            f"lower validation_days"
        )

    extra = {name: frame.loc[: pd.Timestamp(cutoff)].to_numpy(dtype=np.float64)
             for name, frame in (extras or {}).items()}
    features = compute_features(history, config, extra)
    target = forward_target(history, config) * TARGET_SCALE

    x = features[train_first : train_last + 1].reshape(-1, features.shape[-1])
    y = target[train_first : train_last + 1].reshape(-1)
    keep = ~np.isnan(x).any(axis=1) & ~np.isnan(y)
    x_val = features[val_first : val_last + 1]
    y_val = target[val_first : val_last + 1]
    val_mask = ~np.isnan(x_val).any(axis=-1) & ~np.isnan(y_val)
    return TrainingData(
        feature_names=feature_names(config),
        x_train=np.ascontiguousarray(x[keep], dtype=np.float32),
        y_train=np.ascontiguousarray(y[keep], dtype=np.float32),
        x_val=np.nan_to_num(x_val).astype(np.float32),
        y_val=np.nan_to_num(y_val).astype(np.float32),
        val_mask=val_mask,
        train_cutoff=cutoff,
        train_days=(days[train_first], days[train_last]),
        validation_days=(days[val_first], days[val_last]),
    )
