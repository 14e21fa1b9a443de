"""Preparing daily rows for the gate: the comparison window, validity, and pairing by day."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from scorer.report import Verdict

GATE_COLUMNS = ("gross", "turnover", "cost", "net")
CONSTANT_TOLERANCE = 1e-9  # a spread under this share of the returns' size is rounding, not signal


def in_window(daily: pd.DataFrame | None, since: Any) -> pd.DataFrame:
    """The rows on or after `since` (all rows when None), sorted by day."""
    if daily is None:
        return pd.DataFrame(columns=list(GATE_COLUMNS), dtype=float)
    rows = daily.sort_index()
    if since is None:
        return rows
    if isinstance(rows.index, pd.DatetimeIndex):
        since = pd.Timestamp(since)
    return rows.loc[rows.index >= since]


def check_pairable(daily: Mapping[str, pd.DataFrame]) -> None:
    """Raise ValueError unless every version's rows are indexed by days of one kind.

    Strings and timestamps, or timestamps with and without a time zone, never compare equal:
    pairing them would silently find no common day.
    """
    kinds = {vid: _index_kind(rows.index) for vid, rows in daily.items() if len(rows)}
    if len(set(kinds.values())) > 1:
        described = ", ".join(f"version {vid} by {kind}" for vid, kind in kinds.items())
        raise ValueError(f"the daily rows cannot be paired by day: {described}")


def _index_kind(index: pd.Index) -> str:
    if isinstance(index, pd.DatetimeIndex):
        return f"timestamps in {index.tz}" if index.tz is not None else "timestamps without a zone"
    return f"{index.inferred_type} values"


def constant_verdict(values: np.ndarray, *, scale: float) -> tuple[Verdict, float, str] | None:
    """TIE (about zero) or DEGENERATE (another constant) when `values` barely vary, else None.

    "Barely" is relative: a spread within CONSTANT_TOLERANCE of `scale` (the size of the returns
    the values come from) is rounding, as is a spread whose standard deviation underflows to 0.
    """
    if len(values) < 2:
        return None
    spread = float(np.max(values) - np.min(values))
    if spread > CONSTANT_TOLERANCE * scale and float(np.std(values)) > 0:
        return None
    mean = float(np.mean(values))
    if abs(mean) <= CONSTANT_TOLERANCE * scale:
        return Verdict.TIE, 0.0, "a tie"
    return Verdict.DEGENERATE, mean, "a constant"


def refusal(version_id: str, daily: pd.DataFrame) -> str | None:
    """Why this version's rows cannot be used: missing columns, repeated days, values that are
    not finite or so large that the gate's sums of squares would overflow."""
    missing = [name for name in GATE_COLUMNS if name not in daily.columns]
    if missing:
        return f"version {version_id} has no {', '.join(missing)} column in its daily rows"
    if daily.index.has_duplicates:
        repeated = daily.index[daily.index.duplicated()][0]
        return f"version {version_id} was scored more than once on {repeated}"
    too_large = math.sqrt(np.finfo(float).max / (16 * max(len(daily), 1)))
    for name in GATE_COLUMNS:
        try:
            values = daily[name].to_numpy(dtype=float)
        except (TypeError, ValueError):
            return f"version {version_id} has non-numeric {name} values"
        bad = ~np.isfinite(values)
        if bad.any():
            first = daily.index[np.flatnonzero(bad)[0]]
            return (
                f"version {version_id} has non-finite {name} on {int(bad.sum())} day(s) "
                f"(first {first})"
            )
        largest = float(np.max(np.abs(values))) if len(values) else 0.0
        if largest > too_large:
            return (
                f"version {version_id} has {name} values too large for the gate's statistics "
                f"(up to {largest:.3g}; at most {too_large:.3g} over {len(daily)} days)"
            )
    return None


def paired(challenger: pd.DataFrame, champion: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both versions' rows restricted to the days both were scored (never forward-filled)."""
    days = challenger.index.intersection(champion.index).sort_values()
    return challenger.loc[days], champion.loc[days]
