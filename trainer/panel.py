"""A user's panel of daily returns: read, checked and digested, never written.

Long format, one row per (date, asset): ``date``, ``asset``, ``ret`` (that day's simple return)
plus any numeric columns offered as extra features. Three layouts, each landed by the user's
own pipeline:

- a directory of ``date=YYYY-MM-DD/`` partitions holding ``*.parquet`` files (the date comes
  from the partition; a ``date`` column, if present, must agree);
- one Parquet file;
- one CSV file (rows appended day by day, in date order).

Every problem is a :class:`PanelError` naming the file, the row (1-based data row; for CSV the
line) or the partition, and what is wrong. Each day's content has a digest (SHA-256 over its
rows sorted by asset, format-independent), so a day that changes after it was used is noticed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

REQUIRED = ("date", "asset", "ret")
_PARTITION = re.compile(r"^date=(.*)$")


class PanelConfig(BaseModel):
    """Where a panel lives and how it is read (``path`` is never written to)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["panel"] = "panel"
    name: str = Field(..., pattern=r"^[a-z0-9][a-z0-9._-]{0,47}$", description="dataset slug")
    path: str = Field(..., min_length=1, description="partition directory, .parquet or .csv")
    format: Literal["parquet", "csv"] | None = Field(
        None, description="parquet or csv; None: from the path (a directory is parquet)")
    min_assets: int = Field(10, ge=2, description="fewer assets on a day: the day is skipped")

    @property
    def resolved_format(self) -> str:
        if self.format is not None:
            return self.format
        return "csv" if self.path.lower().endswith(".csv") else "parquet"

    def description(self) -> dict:
        """What identifies the source in a fingerprint (not its path: a copy elsewhere is the
        same data)."""
        return {"kind": "panel", "name": self.name, "format": self.resolved_format}


class PanelError(ValueError):
    """The panel cannot be read as the contract says (the message names where and why)."""


@dataclass(frozen=True)
class Panel:
    """A panel as wide frames: ``returns`` and each extra column, index dates, columns assets."""

    returns: pd.DataFrame
    extras: dict[str, pd.DataFrame]
    digests: dict[dt.date, str]
    rows: int

    @property
    def days(self) -> list[dt.date]:
        return [ts.date() for ts in pd.DatetimeIndex(self.returns.index)]


def read_panel(config: PanelConfig, *, start: dt.date | None = None) -> Panel:
    """The landed panel (days from ``start`` on, when given), checked; see the module doc."""
    path = Path(config.path)
    if not path.exists():
        raise PanelError(f"{path}: the panel does not exist (nothing has landed yet?)")
    if path.is_dir():
        frame = _read_partitions(path, start)
    elif config.resolved_format == "csv":
        frame = _read_csv(path)
    else:
        frame = _read_parquet_file(path)
    if start is not None and path.is_file():
        frame = frame[frame["date"] >= pd.Timestamp(start)]
    return _to_panel(frame)


def landed_days(config: PanelConfig) -> list[dt.date]:
    """The days present, cheaply for partitions (names only), else by reading the dates."""
    path = Path(config.path)
    if path.is_dir():
        return sorted(day for day, _ in _partitions(path))
    if not path.exists():
        return []
    return read_panel(config).days


def _partitions(root: Path) -> list[tuple[dt.date, Path]]:
    found = []
    for entry in sorted(root.iterdir()):
        match = _PARTITION.match(entry.name)
        if not match or not entry.is_dir():
            continue  # hidden staging directories and unrelated files are not days
        try:
            day = dt.date.fromisoformat(match.group(1))
        except ValueError:
            raise PanelError(f"{entry}: partition name is not date=YYYY-MM-DD") from None
        if any(entry.glob("*.parquet")):
            found.append((day, entry))
    return found


def _read_partitions(root: Path, start: dt.date | None) -> pd.DataFrame:
    frames = []
    for day, directory in _partitions(root):
        if start is not None and day < start:
            continue
        for file in sorted(directory.glob("*.parquet")):
            frame = _read_parquet_file(file, partition_day=day)
            frames.append(frame)
    if not frames:
        raise PanelError(f"{root}: no date=YYYY-MM-DD/*.parquet partitions have landed")
    return pd.concat(frames, ignore_index=True)


def _read_parquet_file(path: Path, *, partition_day: dt.date | None = None) -> pd.DataFrame:
    try:
        frame = pq.read_table(path).to_pandas()
    except Exception as exc:  # pyarrow raises many types for a damaged or foreign file
        raise PanelError(f"{path}: not a readable Parquet file ({exc})") from None
    if partition_day is not None:
        if "date" in frame.columns:
            dates = _parse_dates(frame["date"], path, row_offset=1)
            wrong = np.flatnonzero(dates.dt.date.to_numpy() != partition_day)
            if wrong.size:
                raise PanelError(f"{path}: row {wrong[0] + 1}: date {dates.iloc[wrong[0]].date()}"
                                 f" is not the partition's day {partition_day}")
        frame["date"] = pd.Timestamp(partition_day)
    return _checked(frame, path, row_offset=1, ordered=partition_day is None)


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype={"asset": str, "date": str})
    except pd.errors.EmptyDataError:
        raise PanelError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise PanelError(f"{path}: not readable as CSV ({' '.join(str(exc).split())})") from None
    return _checked(frame, path, row_offset=2, ordered=True)  # line 1 is the header


def _checked(frame: pd.DataFrame, path: Path, *, row_offset: int, ordered: bool
             ) -> pd.DataFrame:
    """Columns present, values well-formed; ``row_offset`` turns a 0-based index into the
    row (or line) the user sees."""
    where = "line" if row_offset == 2 else "row"
    missing = [name for name in REQUIRED if name not in frame.columns]
    if missing:
        raise PanelError(f"{path}: missing column(s) {', '.join(missing)}; a panel needs "
                         f"{', '.join(REQUIRED)} (found {', '.join(map(str, frame.columns))})")
    if frame.empty:
        raise PanelError(f"{path}: the file is empty (no rows)")
    frame = frame.reset_index(drop=True)
    if not pd.api.types.is_datetime64_any_dtype(frame["date"]):
        frame["date"] = _parse_dates(frame["date"], path, row_offset=row_offset)
    frame["date"] = frame["date"].dt.tz_localize(None) if frame["date"].dt.tz else frame["date"]
    frame["date"] = frame["date"].dt.normalize()
    asset = frame["asset"]
    blank = asset.isna() | (asset.astype(str).str.strip() == "")
    if blank.any():
        raise PanelError(f"{path}: {where} {_first(blank) + row_offset}: asset is empty")
    frame["asset"] = asset.astype(str)
    numeric = pd.to_numeric(frame["ret"], errors="coerce")
    bad = numeric.isna() & frame["ret"].notna()
    if bad.any():
        k = _first(bad)
        raise PanelError(f"{path}: {where} {k + row_offset}: ret {frame['ret'].iloc[k]!r} is "
                         "not a number")
    nonfinite = ~np.isfinite(numeric.to_numpy(dtype=np.float64))
    if nonfinite.any():
        k = int(np.flatnonzero(nonfinite)[0])
        raise PanelError(f"{path}: {where} {k + row_offset}: ret is {frame['ret'].iloc[k]!r};"
                         " a return must be a finite number")
    frame["ret"] = numeric.astype(np.float64)
    if ordered:
        back = frame["date"].diff() < pd.Timedelta(0)
        if back.any():
            k = _first(back)
            raise PanelError(f"{path}: {where} {k + row_offset}: date "
                             f"{frame['date'].iloc[k].date()} comes after "
                             f"{frame['date'].iloc[k - 1].date()}; rows must be in date order")
    duplicated = frame.duplicated(["date", "asset"])
    if duplicated.any():
        k = _first(duplicated)
        raise PanelError(f"{path}: {where} {k + row_offset}: duplicate (date, asset) "
                         f"({frame['date'].iloc[k].date()}, {frame['asset'].iloc[k]})")
    return frame


def _parse_dates(values: pd.Series, path: Path, *, row_offset: int) -> pd.Series:
    parsed = pd.to_datetime(values, errors="coerce", format="mixed")
    bad = parsed.isna()
    if bad.any():
        k = _first(bad)
        where = "line" if row_offset == 2 else "row"
        raise PanelError(f"{path}: {where} {k + row_offset}: date {values.iloc[k]!r} is not a "
                         "date (use YYYY-MM-DD)")
    return parsed


def _first(mask: pd.Series) -> int:
    return int(np.flatnonzero(mask.to_numpy())[0])


def _to_panel(frame: pd.DataFrame) -> Panel:
    duplicated = frame.duplicated(["date", "asset"])
    if duplicated.any():  # across partition files of one day
        k = _first(duplicated)
        raise PanelError(f"duplicate (date, asset) ({frame['date'].iloc[k].date()}, "
                         f"{frame['asset'].iloc[k]}) in two files of one partition")
    extra = [c for c in frame.columns if c not in REQUIRED
             and pd.api.types.is_numeric_dtype(frame[c])]
    frame = frame.sort_values(["date", "asset"], kind="stable")
    wide = frame.pivot(index="date", columns="asset", values="ret")
    wide.index = pd.DatetimeIndex(wide.index, name="date")
    wide.columns = pd.Index([str(a) for a in wide.columns], name="asset")
    extras = {}
    for column in extra:
        table = frame.pivot(index="date", columns="asset", values=column)
        extras[column] = table.reindex(index=wide.index, columns=wide.columns).astype(np.float64)
    return Panel(wide.astype(np.float64), extras, _digests(frame, extra), len(frame))


def _digests(frame: pd.DataFrame, extra: list[str]) -> dict[dt.date, str]:
    """SHA-256 per day of its rows sorted by asset (assets, then each column's float64 bytes)."""
    digests = {}
    for day, rows in frame.groupby("date", sort=True):
        digest = hashlib.sha256()
        digest.update("\0".join(rows["asset"]).encode())
        for column in ["ret", *sorted(extra)]:
            digest.update(f"\0{column}\0".encode())
            digest.update(rows[column].to_numpy(dtype="<f8").tobytes())
        digests[pd.Timestamp(day).date()] = digest.hexdigest()
    return digests
