"""Reading market data the way a real feed lands it: one Parquet partition per trading day.

A feed directory holds ``date=YYYY-MM-DD/part-0.parquet`` partitions in long format (columns
``asset`` and ``ret``). A day exists once its directory is visible: writers build each day in a
hidden temporary directory and rename it into place, so a reader never sees half a day. Any feed
that drops files this way (the bundled synthetic market or a real vendor drop) is read unchanged.

A landed partition is never rewritten in place, so a process keeps the days it has decoded
(keyed by the file's inode, size and modification time, and bounded in bytes): a long-lived
runner that reads the same trailing window on every tick decodes only the days that are new.
A file replaced by a rename, or touched, is read again. Days not kept are read a few at a time
(opening a file costs more than decoding its few hundred rows).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PARTITION_FILE = "part-0.parquet"
_PARTITION = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
DAY_CACHE_BYTES = 64 * 2**20  # decoded days kept per process
READ_THREADS = 4  # partitions read at once


def partition_name(day: dt.date) -> str:
    return f"date={day.isoformat()}"


class _DayCache:
    """Decoded partitions, ``path -> (stat key, assets, returns)``, least recently used first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._days: OrderedDict[str, tuple[tuple, pa.Array, np.ndarray]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def read(self, paths: list[str]) -> list[tuple[pa.Array, np.ndarray]]:
        """``(assets, returns)`` of each partition: kept ones from memory, the others read
        (several at a time: most of a file's cost is opening it, not decoding it)."""
        keys = []
        for path in paths:
            info = os.stat(path)
            keys.append((info.st_ino, info.st_size, info.st_mtime_ns))
        found: dict[str, tuple[pa.Array, np.ndarray]] = {}
        with self._lock:
            for path, key in zip(paths, keys, strict=True):
                cached = self._days.get(path)
                if cached is not None and cached[0] == key:
                    self._days.move_to_end(path)
                    found[path] = (cached[1], cached[2])
        missing = [(path, key) for path, key in zip(paths, keys, strict=True)
                   if path not in found]
        if len(missing) > 1:
            with ThreadPoolExecutor(READ_THREADS, thread_name_prefix="feed-read") as pool:
                decoded = list(pool.map(_decode, [path for path, _ in missing]))
        else:
            decoded = [_decode(path) for path, _ in missing]
        for (path, key), day in zip(missing, decoded, strict=True):
            found[path] = day
            self._keep(path, key, day)
        return [found[path] for path in paths]

    def _keep(self, path: str, key: tuple, day: tuple[pa.Array, np.ndarray]) -> None:
        with self._lock:
            previous = self._days.pop(path, None)
            if previous is not None:
                self._bytes -= previous[2].nbytes
            self._days[path] = (key, *day)
            self._bytes += day[1].nbytes
            while self._bytes > self.capacity and len(self._days) > 1:
                self._bytes -= self._days.popitem(last=False)[1][2].nbytes

    def clear(self) -> None:
        with self._lock:
            self._days.clear()
            self._bytes = 0


def _decode(path: str) -> tuple[pa.Array, np.ndarray]:
    table = pq.ParquetFile(path).read(columns=["asset", "ret"])
    values = table.column("ret").to_numpy().astype(np.float64)
    values.flags.writeable = False  # shared by every reader of this day
    return table.column("asset").combine_chunks(), values


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
        decoded = _cache.read([os.path.join(root, partition_name(day), PARTITION_FILE)
                               for day in days])
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
