"""A user's panel of daily returns: read, checked and digested, never written.

Long format, one row per (date, asset): ``date``, ``asset``, ``ret`` (that day's simple return)
plus any numeric columns offered as extra features. Three layouts, each landed by the user's
own pipeline:

- a directory of ``date=YYYY-MM-DD/`` partitions holding ``*.parquet`` files (the date comes
  from the partition; a ``date`` column, if present, must agree);
- one Parquet file;
- one CSV file (rows appended day by day, in date order).

Each may also be an object-store URL (``s3://bucket/prefix/panel`` for the partitions, or
``s3://bucket/prefix/panel.parquet``), read through :mod:`registry.storage` with the settings
the artefact store uses (``object_store``: endpoint, region, credentials), so replicas on
several machines read the same landed days; partitions are cached by ETag as files by inode.

Every problem is a :class:`PanelError` naming the file, the row (1-based data row; for CSV the
line) or the partition, and what is wrong. Each day's content has a digest (SHA-256 over its
rows sorted by asset, format-independent), so a day that changes after it was used is noticed.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from registry.storage import is_store_url, open_store
from trainer.config import PanelConfig

REQUIRED = ("date", "asset", "ret")
READ_THREADS = 4  # partitions read at once (opening a file costs more than decoding it)
TABLE_CACHE_BYTES = 256 * 2**20  # decoded partitions kept per process
_tables: dict[str, tuple[object, pa.Table]] = {}
_tables_lock = threading.Lock()
_PARTITION = re.compile(r"^date=(.*)$")


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


def read_panel(config: PanelConfig, *, start: dt.date | None = None,
               store_settings: Any = None) -> Panel:
    """The landed panel (days from ``start`` on, when given), checked; see the module doc.
    ``store_settings``: the ``object_store`` section a URL panel is read with (None: the
    ``AWS_*`` environment)."""
    if is_store_url(config.path):
        return _to_panel(_read_stored(config, start, store_settings))
    path = Path(config.path)
    if not path.exists():
        raise PanelError(f"{path}: the panel does not exist (nothing has landed yet?)")
    if path.is_dir():
        frame = _read_partitions(path, start)
    elif not path.is_file():
        raise PanelError(f"{path}: not a file or a directory of partitions")
    elif config.resolved_format == "csv":
        frame = _read_csv(path, path)
    else:
        frame = _read_parquet_file(path)
    if start is not None and path.is_file():
        frame = frame[frame["date"] >= pd.Timestamp(start)]
    return _to_panel(frame)


def landed_days(config: PanelConfig, *, store_settings: Any = None) -> list[dt.date]:
    """The days present, cheaply for partitions (names only), else by reading the dates."""
    if is_store_url(config.path):
        place = _StoredPanel(config, store_settings)
        if not place.is_object:
            return sorted(day for day, _ in place.partitions())
        if not place.store.exists(place.key):
            return []
        return read_panel(config, store_settings=store_settings).days
    path = Path(config.path)
    if path.is_dir():
        return sorted(day for day, _ in _partitions(path))
    if not path.exists():
        return []
    return read_panel(config).days


class _StoredPanel:
    """A panel in a bucket: ``key`` under a store rooted at the URL's parent (a partition
    prefix, or one .parquet/.csv object). A bucket that does not answer is the store's
    ``StorageUnavailable``, naming the URL; a missing object is a :class:`PanelError`."""

    def __init__(self, config: PanelConfig, settings: Any) -> None:
        self.url = config.path.rstrip("/")
        parent, _, self.key = self.url.rpartition("/")
        if parent.endswith(":/") or not self.key:
            raise PanelError(f"{config.path}: a panel URL names a prefix or an object in a "
                             "bucket (s3://bucket/panel), not a whole bucket")
        self.is_object = self.key.lower().endswith((".parquet", ".csv"))
        self.csv = config.resolved_format == "csv"
        self.store = open_store(parent, settings=settings, role="panel store")

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except FileNotFoundError:
            raise PanelError(f"{self.url}: the panel does not exist (nothing has landed "
                             "yet?)") from None

    def partitions(self) -> list[tuple[dt.date, list[Any]]]:
        """Each landed day and its ``*.parquet`` objects, as :func:`_partitions` on disk."""
        days: dict[dt.date, list[Any]] = {}
        for item in self.call(self.store.list, self.key):
            name, _, file = item.key[len(self.key) + 1:].partition("/")
            match = _PARTITION.match(name)
            if not match or "/" in file or not file.endswith(".parquet"):
                continue  # staging prefixes and unrelated objects are not days
            try:
                day = dt.date.fromisoformat(match.group(1))
            except ValueError:
                raise PanelError(f"{self.url}/{name}: partition name is not "
                                 "date=YYYY-MM-DD") from None
            days.setdefault(day, []).append(item)
        return sorted(days.items(), key=lambda pair: pair[0])

    def table(self, item: Any) -> pa.Table:
        """A partition object as Arrow, kept per process while its ETag holds."""
        where = f"{self.store.url}/{item.key}"
        return _cached_table(where, item.stamp, lambda: pa.BufferReader(
            self.call(self.store.get, item.key)))


def _read_stored(config: PanelConfig, start: dt.date | None, settings: Any) -> pd.DataFrame:
    place = _StoredPanel(config, settings)
    if place.is_object:
        data = place.call(place.store.get, place.key)
        if place.csv:
            frame = _read_csv(BytesIO(data), place.url)
        else:
            frame = _checked(_parquet(pa.BufferReader(data), place.url).to_pandas(), place.url,
                             lambda k: f"{place.url}: row {k + 1}", ordered=True)
        return frame if start is None else frame[frame["date"] >= pd.Timestamp(start)]
    wanted = [(day, f"{place.store.url}/{item.key}", functools.partial(place.table, item))
              for day, items in place.partitions() if start is None or day >= start
              for item in items]
    if not wanted:
        raise PanelError(f"{place.url}: no date=YYYY-MM-DD/*.parquet partitions have landed "
                         "under this prefix")
    return _partition_frame(place.url, wanted)


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
    """Every partition's files as one frame (read by Arrow, checked once as a whole)."""
    wanted = [(day, file, functools.partial(_read_table, file))
              for day, directory in _partitions(root) if start is None or day >= start
              for file in sorted(directory.glob("*.parquet"))]
    if not wanted:
        raise PanelError(f"{root}: no date=YYYY-MM-DD/*.parquet partitions have landed")
    return _partition_frame(root, wanted)


def _partition_frame(root: Path | str, wanted: list[tuple[dt.date, Path | str,
                                                          Callable[[], pa.Table]]]
                     ) -> pd.DataFrame:
    """``(day, file, read)`` for each partition file, read in parallel, checked, as one frame."""
    tables, files, sizes = [], [], []
    with ThreadPoolExecutor(READ_THREADS, thread_name_prefix="panel-read") as pool:
        read = list(pool.map(lambda item: item[2](), wanted))
    for (day, file, _), table in zip(wanted, read, strict=True):
        missing = [name for name in ("asset", "ret") if name not in table.column_names]
        if missing:
            raise PanelError(f"{file}: missing column(s) {', '.join(missing)}; a partition "
                             f"needs asset, ret (found {', '.join(table.column_names)})")
        if table.num_rows == 0:
            raise PanelError(f"{file}: the file is empty (no rows)")
        ret_type = table.schema.field("ret").type
        if not (pa.types.is_floating(ret_type) or pa.types.is_integer(ret_type)):
            rows = table.select(["ret"]).to_pandas()["ret"]  # e.g. text: find the bad row
            numeric = _numeric_returns(rows, lambda k, f=file: f"{f}: row {k + 1}")
            table = table.set_column(table.column_names.index("ret"), "ret",
                                     pa.array(numeric.to_numpy(dtype=np.float64)))
        if "date" in table.column_names:
            dates = _parse_dates(table.column("date").to_pandas(),
                                 lambda k, f=file: f"{f}: row {k + 1}")
            wrong = np.flatnonzero(dates.dt.date.to_numpy() != day)
            if wrong.size:
                raise PanelError(f"{file}: row {wrong[0] + 1}: date "
                                 f"{dates.iloc[wrong[0]].date()} is not the partition's "
                                 f"day {day}")
            table = table.drop_columns(["date"])
        table = table.append_column("date", pa.array(np.full(
            table.num_rows, np.datetime64(day, "ns"))))
        tables.append(table)
        files.append(file)
        sizes.append(table.num_rows)
    try:
        frame = pa.concat_tables(tables, promote_options="permissive").to_pandas()
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise PanelError(f"{root}: partitions disagree on column types ({exc})") from None
    ends = np.cumsum(sizes)

    def where(k: int) -> str:
        n = int(np.searchsorted(ends, k, side="right"))
        return f"{files[n]}: row {k - (ends[n] - sizes[n]) + 1}"

    return _checked(frame, root, where, ordered=False)


def _read_table(path: Path) -> pa.Table:
    """A Parquet file as Arrow, kept per process while its inode, size and mtime hold (a
    landed partition is not rewritten in place; one that is, is read again)."""
    info = path.stat()
    return _cached_table(str(path), (info.st_ino, info.st_size, info.st_mtime_ns),
                         lambda: path)


def _cached_table(name: str, stamp: object, source: Callable[[], Any]) -> pa.Table:
    """The table at ``name`` while its ``stamp`` holds, else read from ``source()``."""
    with _tables_lock:
        cached = _tables.get(name)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    table = _parquet(source(), name)
    with _tables_lock:
        if sum(t.nbytes for _, t in _tables.values()) > TABLE_CACHE_BYTES:
            _tables.clear()
        _tables[name] = (stamp, table)
    return table


def _parquet(source: Any, name: Path | str) -> pa.Table:
    try:
        return pq.read_table(source)
    except Exception as exc:  # pyarrow raises many types for a damaged or foreign file
        raise PanelError(f"{name}: not a readable Parquet file ({exc})") from None


def _read_parquet_file(path: Path) -> pd.DataFrame:
    return _checked(_read_table(path).to_pandas(), path, lambda k: f"{path}: row {k + 1}",
                    ordered=True)


def _read_csv(source: Path | BytesIO, path: Path | str) -> pd.DataFrame:
    try:
        frame = pd.read_csv(source, dtype={"asset": str, "date": str})
    except pd.errors.EmptyDataError:
        raise PanelError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise PanelError(f"{path}: not readable as CSV ({' '.join(str(exc).split())})") from None
    # line 1 is the header
    return _checked(frame, path, lambda k: f"{path}: line {k + 2}", ordered=True)


def _checked(frame: pd.DataFrame, path: Path | str, where: Callable[[int], str], *, ordered: bool
             ) -> pd.DataFrame:
    """Columns present, values well-formed; ``where(k)`` names the file and row of the
    ``k``-th (0-based) row of ``frame``."""
    missing = [name for name in REQUIRED if name not in frame.columns]
    if missing:
        raise PanelError(f"{path}: missing column(s) {', '.join(missing)}; a panel needs "
                         f"{', '.join(REQUIRED)} (found {', '.join(map(str, frame.columns))})")
    if frame.empty:
        raise PanelError(f"{path}: the file is empty (no rows)")
    frame = frame.reset_index(drop=True)
    if not pd.api.types.is_datetime64_any_dtype(frame["date"]):
        frame["date"] = _parse_dates(frame["date"], where)
    if frame["date"].dt.tz is not None:
        frame["date"] = frame["date"].dt.tz_localize(None)
    frame["date"] = frame["date"].dt.normalize()
    asset = frame["asset"]
    blank = asset.isna() | (asset.astype(str).str.strip() == "")
    if blank.any():
        raise PanelError(f"{where(_first(blank))}: asset is empty")
    frame["asset"] = asset.astype(str)
    frame["ret"] = _numeric_returns(frame["ret"], where)
    if ordered:
        back = frame["date"].diff() < pd.Timedelta(0)
        if back.any():
            k = _first(back)
            raise PanelError(f"{where(k)}: date {frame['date'].iloc[k].date()} comes after "
                             f"{frame['date'].iloc[k - 1].date()}; rows must be in date order")
    duplicated = frame.duplicated(["date", "asset"])
    if duplicated.any():
        k = _first(duplicated)
        raise PanelError(f"{where(k)}: duplicate (date, asset) "
                         f"({frame['date'].iloc[k].date()}, {frame['asset'].iloc[k]})")
    return frame


def _numeric_returns(values: pd.Series, where: Callable[[int], str]) -> pd.Series:
    """``values`` as float64, or an error naming the first that is not a finite number."""
    numeric = pd.to_numeric(values, errors="coerce")
    bad = numeric.isna() & values.notna()
    if bad.any():
        k = _first(bad)
        raise PanelError(f"{where(k)}: ret {values.iloc[k]!r} is not a number")
    nonfinite = ~np.isfinite(numeric.to_numpy(dtype=np.float64))
    if nonfinite.any():
        k = int(np.flatnonzero(nonfinite)[0])
        raise PanelError(f"{where(k)}: ret is {numeric.iloc[k]}; a return must be a "
                         "finite number")
    return numeric.astype(np.float64)


def _parse_dates(values: pd.Series, where: Callable[[int], str]) -> pd.Series:
    parsed = pd.to_datetime(values, errors="coerce", format="mixed")
    bad = parsed.isna()
    if bad.any():
        k = _first(bad)
        raise PanelError(f"{where(k)}: date {values.iloc[k]!r} is not a date (use YYYY-MM-DD)")
    return parsed


def _first(mask: pd.Series) -> int:
    return int(np.flatnonzero(mask.to_numpy())[0])


def _to_panel(frame: pd.DataFrame) -> Panel:
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
    """SHA-256 per day of its rows sorted by asset (assets, then each column's float64 bytes);
    ``frame`` is sorted by date, then asset."""
    dates = frame["date"].to_numpy()
    bounds = [0, *(np.flatnonzero(dates[1:] != dates[:-1]) + 1).tolist(), len(frame)]
    assets = frame["asset"].to_numpy(dtype=object)
    columns = [(name, frame[name].to_numpy(dtype="<f8")) for name in ["ret", *sorted(extra)]]
    digests = {}
    for first, last in zip(bounds[:-1], bounds[1:], strict=True):
        digest = hashlib.sha256("\0".join(assets[first:last]).encode())
        for name, values in columns:
            digest.update(f"\0{name}\0".encode())
            digest.update(values[first:last].tobytes())
        digests[pd.Timestamp(dates[first]).date()] = digest.hexdigest()
    return digests
