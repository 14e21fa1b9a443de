"""Features and target: the one place both training and serving turn returns into model inputs.

Every feature at day ``t`` is a function of returns on days ``<= t`` only (trailing windows
computed from cumulative sums), so scoring day ``t`` never looks ahead. The target is the
forward return over ``forward_days``: the sum of returns on ``t+1..t+h``.
"""

from __future__ import annotations

import numpy as np

from trainer.config import TrainConfig

RETURN_LOOKBACKS = (1, 5, 20, 120)
VOLATILITY_DAYS = 60
BETA_DAYS = 120
RESIDUAL_MOMENTUM_DAYS = 60
# Days of history a feature row needs, counting day t itself.
WARMUP_DAYS = max(*RETURN_LOOKBACKS, VOLATILITY_DAYS, BETA_DAYS, RESIDUAL_MOMENTUM_DAYS)
Z_CLIP = 5.0
# An asset joins once it reported on this share of the last WARMUP_DAYS days (a new listing
# waits until its features have the history they need; an occasional missing day is fine).
MIN_REPORTED_FRACTION = 0.8


def feature_names(config: TrainConfig) -> list[str]:
    names = [f"ret_{days}d" for days in RETURN_LOOKBACKS]
    names += [f"vol_{VOLATILITY_DAYS}d", f"beta_{BETA_DAYS}d"]
    if config.residual_momentum:
        names.append(f"resmom_{RESIDUAL_MOMENTUM_DAYS}d")
    names += [f"x_{column}" for column in config.extra_features]
    return names


def eligible(returns: np.ndarray) -> np.ndarray:
    """``[days, assets]`` bool: the asset reported today and on at least
    ``MIN_REPORTED_FRACTION`` of the last ``WARMUP_DAYS`` days (False before that much history).
    A function of those days only, so training and serving agree whatever window they read."""
    reported = ~np.isnan(np.asarray(returns, dtype=np.float64))
    counts = _trailing(_cumulative(reported.astype(np.float64)), WARMUP_DAYS)
    with np.errstate(invalid="ignore"):
        return reported & (counts >= MIN_REPORTED_FRACTION * WARMUP_DAYS)


def feature_key(config: TrainConfig) -> tuple[bool, bool, tuple[str, ...]]:
    """The knobs :func:`compute_features` reads: configurations with the same key get the
    same features from the same returns, so models that agree on it can share them."""
    return (config.residual_momentum, config.xsec_demean, config.extra_features)


def _cumulative(values: np.ndarray) -> np.ndarray:
    """``cum[k]`` = sum over days ``0..k-1`` (missing values count as zero)."""
    cum = np.zeros((values.shape[0] + 1, *values.shape[1:]))
    np.cumsum(np.nan_to_num(values), axis=0, out=cum[1:])
    return cum


def _trailing(cum: np.ndarray, days: int) -> np.ndarray:
    """Sum over the ``days`` days ending at each ``t`` (NaN until that much history exists)."""
    out = np.full((cum.shape[0] - 1, *cum.shape[1:]), np.nan)
    out[days - 1 :] = cum[days:] - cum[:-days]
    return out


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean over ``axis`` ignoring NaN; NaN (silently) where every value is missing."""
    present = ~np.isnan(values)
    count = present.sum(axis=axis, keepdims=True)
    total = np.where(present, values, 0.0).sum(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _normalise(raw: np.ndarray, demean: bool) -> np.ndarray:
    """Per day and feature, across assets: z-score (``demean``) or scale by the dispersion."""
    mean = _nanmean(raw, axis=1)
    spread = np.sqrt(_nanmean((raw - mean) ** 2, axis=1))
    centre = mean if demean else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = (raw - centre) / np.where(spread > 0, spread, np.nan)
    return np.clip(scaled, -Z_CLIP, Z_CLIP)


def compute_features(returns: np.ndarray, config: TrainConfig,
                     extras: dict[str, np.ndarray] | None = None, *,
                     eligible_assets: np.ndarray | None = None) -> np.ndarray:
    """``[days, assets]`` daily returns -> ``[days, assets, features]`` float32.

    Row ``t`` uses returns on days ``<= t`` only. Rows before ``WARMUP_DAYS - 1`` (not enough
    history) and assets with missing data are NaN; :func:`trainer.serving.Predictor.predict`
    treats NaN as the cross-sectional average. ``extras`` holds the panel columns named by
    ``config.extra_features`` (``[days, assets]`` each, known at the close of their day); each
    is normalised across assets like the others. ``eligible_assets`` is
    ``eligible(returns)`` when the caller has it (a shadow run computes it once for every
    configuration).
    """
    returns = np.asarray(returns, dtype=np.float64)
    if returns.ndim != 2:
        raise ValueError(f"returns must be [days, assets], got shape {returns.shape}")
    market = _nanmean(returns, axis=1)
    cum = _cumulative(returns)
    columns = [_trailing(cum, days) for days in RETURN_LOOKBACKS]

    mean_r = _trailing(cum, VOLATILITY_DAYS) / VOLATILITY_DAYS
    mean_r2 = _trailing(_cumulative(returns**2), VOLATILITY_DAYS) / VOLATILITY_DAYS
    columns.append(np.sqrt(np.maximum(mean_r2 - mean_r**2, 0.0)))

    n = BETA_DAYS
    sum_m = _trailing(_cumulative(market), n)
    sum_m2 = _trailing(_cumulative(market**2), n)
    sum_rm = _trailing(_cumulative(returns * market), n)
    sum_r = _trailing(cum, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        beta = (sum_rm - sum_r * sum_m / n) / (sum_m2 - sum_m**2 / n)
    columns.append(beta)

    if config.residual_momentum:
        window = RESIDUAL_MOMENTUM_DAYS
        columns.append(_trailing(cum, window) - beta * _trailing(_cumulative(market), window))
    for name in config.extra_features:
        if extras is None or name not in extras:
            raise ValueError(f"extra feature column {name!r} was not supplied")
        column = np.asarray(extras[name], dtype=np.float64)
        if column.shape != returns.shape:
            raise ValueError(f"extra feature {name!r} has shape {column.shape}, returns "
                             f"{returns.shape}")
        columns.append(np.where(np.isfinite(column), column, np.nan))

    raw = np.stack(columns, axis=-1)
    raw[np.isnan(returns)] = np.nan  # an asset without today's print gets no features today
    settled = slice(WARMUP_DAYS - 1, None)  # earlier rows lack history for every asset
    if eligible_assets is None:
        eligible_assets = eligible(returns)
    raw[settled][~eligible_assets[settled]] = np.nan  # nor one without enough history yet
    return _normalise(raw, config.xsec_demean).astype(np.float32)


def forward_target(returns: np.ndarray, config: TrainConfig) -> np.ndarray:
    """``[days, assets]``: the return over ``t+1..t+forward_days`` (NaN past the data's end).

    With ``xsec_demean`` the target is demeaned across assets each day (the long/short book
    does not care about the market's move).
    """
    returns = np.asarray(returns, dtype=np.float64)
    h = config.forward_days
    cum = _cumulative(returns)
    target = np.full(returns.shape, np.nan)
    if returns.shape[0] > h:
        target[: returns.shape[0] - h] = cum[h + 1 :] - cum[1 : returns.shape[0] - h + 1]
    missing = np.zeros(returns.shape, dtype=bool)
    for lag in range(1, h + 1):  # a missing return inside the window makes the target unknown
        missing[:-lag] |= np.isnan(returns[lag:])
    target[missing] = np.nan
    if config.xsec_demean:
        target = target - _nanmean(target, axis=1)
    return target
