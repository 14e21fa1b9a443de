"""Preparing daily rows for the gate: the comparison window, validity, and pairing by day."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

GATE_COLUMNS = ("gross", "turnover", "cost", "net")


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


def refusal(version_id: str, daily: pd.DataFrame) -> str | None:
    """Why this version's rows cannot be used: missing columns, repeated days, non-finite values."""
    missing = [name for name in GATE_COLUMNS if name not in daily.columns]
    if missing:
        return f"version {version_id} has no {', '.join(missing)} column in its daily rows"
    if daily.index.has_duplicates:
        repeated = daily.index[daily.index.duplicated()][0]
        return f"version {version_id} was scored more than once on {repeated}"
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
    return None


def paired(challenger: pd.DataFrame, champion: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both versions' rows restricted to the days both were scored (never forward-filled)."""
    days = challenger.index.intersection(champion.index).sort_values()
    return challenger.loc[days], champion.loc[days]
