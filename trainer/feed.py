"""Reading market data the way a real feed lands it: one Parquet partition per trading day.

A feed directory holds ``date=YYYY-MM-DD/part-0.parquet`` partitions in long format (columns
``asset`` and ``ret``). A day exists once its directory is visible: writers build each day in a
hidden temporary directory and rename it into place, so a reader never sees half a day. Any feed
that drops files this way (the bundled synthetic market or a real vendor drop) is read unchanged.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PARTITION_FILE = "part-0.parquet"
_PARTITION = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


def partition_name(day: dt.date) -> str:
    return f"date={day.isoformat()}"


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
        for entry in self.path.iterdir():
            match = _PARTITION.match(entry.name)
            if match and (entry / PARTITION_FILE).is_file():
                days.append(dt.date.fromisoformat(match.group(1)))
        return sorted(days)

    def returns(self, start: dt.date | None = None, end: dt.date | None = None) -> pd.DataFrame:
        """Wide returns for landed days in ``[start, end]`` (both inclusive, None: open)."""
        days = [
            day
            for day in self.landed_days()
            if (start is None or day >= start) and (end is None or day <= end)
        ]
        if not days:
            return pd.DataFrame(dtype=np.float64)
        tables = [pq.read_table(self.path / partition_name(day) / PARTITION_FILE) for day in days]
        assets = tables[0].column("asset").to_pylist()
        matrix = np.full((len(days), len(assets)), np.nan)
        position = {asset: k for k, asset in enumerate(assets)}
        for row, table in enumerate(tables):
            names = table.column("asset").to_pylist()
            values = table.column("ret").to_numpy()
            if names == assets:
                matrix[row] = values
            else:  # a day with a different universe: align by name, unknown assets dropped
                for name, value in zip(names, values, strict=True):
                    if name in position:
                        matrix[row, position[name]] = value
        index = pd.DatetimeIndex(pd.to_datetime(days), name="date")
        return pd.DataFrame(matrix, index=index, columns=pd.Index(assets, name="asset"))


def day_table(assets: list[str], returns: np.ndarray) -> pa.Table:
    """One day's partition in long format."""
    return pa.table(
        {"asset": pa.array(assets, pa.string()), "ret": pa.array(returns, pa.float64())}
    )
