"""Reading market data the way a real feed lands it: one Parquet partition per trading day.

A feed directory holds ``date=YYYY-MM-DD/part-0.parquet`` partitions in long format (columns
``asset`` and ``ret``). A day exists once its directory is visible: writers build each day in a
hidden temporary directory and rename it into place, so a reader never sees half a day. Any feed
that drops files this way (the bundled synthetic market or a real vendor drop) is read unchanged.

A landed partition is never rewritten in place, so a process keeps the days it has decoded
(keyed by the file's inode, size and modification time, and bounded in bytes): a long-lived
runner that reads the same trailing window on every tick decodes only the days that are new.
A file replaced by a rename, or touched, is read again.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PARTITION_FILE = "part-0.parquet"
_PARTITION = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
DAY_CACHE_BYTES = 64 * 2**20  # decoded days kept per process


def partition_name(day: dt.date) -> str:
    return f"date={day.isoformat()}"


class _DayCache:
    """Decoded partitions, ``path -> (stat key, assets, returns)``, least recently used first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._days: OrderedDict[str, tuple[tuple, pa.Array, np.ndarray]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def read(self, path: str) -> tuple[pa.Array, np.ndarray]:
        info = os.stat(path)
        key = (info.st_ino, info.st_size, info.st_mtime_ns)
        with self._lock:
            cached = self._days.get(path)
            if cached is not None and cached[0] == key:
                self._days.move_to_end(path)
                return cached[1], cached[2]
        table = pq.ParquetFile(path).read(columns=["asset", "ret"])
        assets = table.column("asset").combine_chunks()
        values = table.column("ret").to_numpy().astype(np.float64)
        values.flags.writeable = False  # shared by every reader of this day
        with self._lock:
            previous = self._days.pop(path, None)
            if previous is not None:
                self._bytes -= previous[2].nbytes
            self._days[path] = (key, assets, values)
            self._bytes += values.nbytes
            while self._bytes > self.capacity and len(self._days) > 1:
                self._bytes -= self._days.popitem(last=False)[1][2].nbytes
        return assets, values

    def clear(self) -> None:
        with self._lock:
            self._days.clear()
            self._bytes = 0


_cache = _DayCache(DAY_CACHE_BYTES)
clear_cache = _cache.clear


class ParquetFeed:
    """Daily returns from a date-partitioned Parquet directory.

    ``landed_days()`` lists the days present; ``returns(start, end)`` gives a wide frame
    (index: dates, columns: assets) of daily simple returns for the days landed in that range.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def landed_days(self) -> list[dt.date]:
        if not self.path.is_dir():
            return []
        days = []
        with os.scandir(self.path) as entries:
            for entry in entries:
                match = _PARTITION.match(entry.name)
                if match and os.path.isfile(f"{entry.path}/{PARTITION_FILE}"):
                    days.append(dt.date.fromisoformat(match.group(1)))
        return sorted(days)

    def returns(self, start: dt.date | None = None, end: dt.date | None = None, *,
                landed: list[dt.date] | None = None) -> pd.DataFrame:
        """Wide returns for landed days in ``[start, end]`` (both inclusive, None: open).

        ``landed`` is ``landed_days()`` when the caller has just listed them.
        """
        days = [
            day
            for day in (self.landed_days() if landed is None else landed)
            if (start is None or day >= start) and (end is None or day <= end)
        ]
        if not days:
            return pd.DataFrame(dtype=np.float64)
        root = os.fspath(self.path)
        decoded = [_cache.read(os.path.join(root, partition_name(day), PARTITION_FILE))
                   for day in days]
        assets = decoded[0][0]
        matrix = np.full((len(days), len(assets)), np.nan)
        position: dict[str, int] | None = None
        for row, (names, values) in enumerate(decoded):
            if names is assets or names.equals(assets):
                matrix[row] = values
                continue
            # a day with a different universe: align by name, unknown assets dropped
            position = position or {asset: k for k, asset in enumerate(assets.to_pylist())}
            for name, value in zip(names.to_pylist(), values, strict=True):
                if name in position:
                    matrix[row, position[name]] = value
        index = pd.DatetimeIndex(pd.to_datetime(days), name="date")
        return pd.DataFrame(matrix, index=index, columns=pd.Index(assets.to_pylist(), name="asset"))


def day_table(assets: list[str], returns: np.ndarray) -> pa.Table:
    """One day's partition in long format."""
    return pa.table(
        {"asset": pa.array(assets, pa.string()), "ret": pa.array(returns, pa.float64())}
    )
