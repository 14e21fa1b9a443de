"""Predictions as Parquet: ``shadow/predictions/<track>/<version_id>/<first>_<last>.parquet``.

Written before outcomes are known, once per (version, day), each batch through a temporary file
and an atomic rename, so a reader never sees half a batch. Columns: day, asset, score, weight
(readable by pandas, DuckDB, Spark or Trino without Podium). A batch file is never rewritten in
place, so a process remembers which days each file holds (keyed by its inode, size and
modification time) instead of reading them on every run.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from registry.ids import validate_slug, validate_version_id

SCHEMA = pa.schema([("day", pa.date32()), ("asset", pa.string()), ("score", pa.float32()),
                    ("weight", pa.float64())])
# Scores are near-unique floats: dictionary-encoding them only costs time.
DICTIONARY_COLUMNS = ["day", "asset", "weight"]
STATISTICS_COLUMNS = ["day"]  # what readers filter on
DAYS_CACHE_FILES = 65536  # batch files whose days a process remembers

_days_lock = threading.Lock()
_days: dict[str, tuple[tuple[int, int, int], list[dt.date]]] = {}


def _file_days(path: Path) -> list[dt.date]:
    info = os.stat(path)
    key = (info.st_ino, info.st_size, info.st_mtime_ns)
    with _days_lock:
        cached = _days.get(str(path))
    if cached is not None and cached[0] == key:
        return cached[1]
    days = pq.read_table(path, columns=["day"]).column("day").unique().to_pylist()
    with _days_lock:
        if len(_days) >= DAYS_CACHE_FILES:
            _days.clear()
        _days[str(path)] = (key, days)
    return days


class PredictionStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def directory(self, track: str, version_id: str) -> Path:
        return self.root / validate_slug(track, what="track") / validate_version_id(version_id)

    def predicted_days(self, track: str, version_id: str) -> list[dt.date]:
        days: set[dt.date] = set()
        for path in self._files(track, version_id):
            days.update(_file_days(path))
        return sorted(days)

    def write(self, track: str, version_id: str, *, days: Sequence[dt.date],
              assets: Sequence[str], scores: np.ndarray, weights: np.ndarray) -> Path:
        """One batch of days × assets, atomically."""
        n_days, n_assets = scores.shape
        # Days and assets go in as dictionary arrays (what Parquet stores for them anyway), so
        # the writer need not hash 1 value per row to find the few distinct ones.
        table = pa.table({
            "day": pa.DictionaryArray.from_arrays(
                np.repeat(np.arange(n_days, dtype=np.int32), n_assets),
                pa.array(np.array(days, dtype="datetime64[D]")).cast(pa.date32())),
            "asset": pa.DictionaryArray.from_arrays(
                np.tile(np.arange(n_assets, dtype=np.int32), n_days),
                pa.array(list(assets), pa.string())),
            "score": pa.array(scores.reshape(-1).astype(np.float32)),
            "weight": pa.array(np.asarray(weights, dtype=np.float64).reshape(-1)),
        })
        directory = self.directory(track, version_id)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / f"{days[0]:%Y%m%d}_{days[-1]:%Y%m%d}.parquet"
        tmp = directory / f".{target.name}.{os.getpid()}.tmp"
        try:
            # No Arrow schema in the file: readers see SCHEMA's plain types, not dictionaries.
            pq.write_table(table, tmp, use_dictionary=DICTIONARY_COLUMNS,
                           write_statistics=STATISTICS_COLUMNS, store_schema=False)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a full disk leaves no half file behind
            raise
        return target

    def read(self, track: str, version_id: str, days: Sequence[dt.date],
             assets: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Scores and weights ``[len(days), len(assets)]`` for predicted days.

        Only files whose name spans one of ``days`` are opened; assets not in ``assets`` are
        ignored, and an asset absent on a day keeps score NaN and weight 0.
        """
        scores = np.full((len(days), len(assets)), np.nan)
        weights = np.zeros((len(days), len(assets)))
        if not days:
            return scores, weights
        wanted = np.array(list(days), dtype="datetime64[D]")
        by_day = np.argsort(wanted)
        column = {asset: k for k, asset in enumerate(assets)}
        for path in self._files(track, version_id):
            first, last = _span(path)
            if first is not None and not ((wanted >= first) & (wanted <= last)).any():
                continue
            table = pq.read_table(path, filters=pc.field("day").isin(pa.array(wanted)))
            if table.num_rows == 0:
                continue
            day_values = table.column("day").to_numpy().astype("datetime64[D]")
            r = by_day[np.searchsorted(wanted, day_values, sorter=by_day)]
            encoded = table.column("asset").dictionary_encode().combine_chunks()
            lookup = np.array([column.get(a, -1) for a in encoded.dictionary.to_pylist()],
                              dtype=np.int64)
            c = lookup[encoded.indices.to_numpy(zero_copy_only=False)]
            known = c >= 0
            scores[r[known], c[known]] = table.column("score").to_numpy()[known]
            weights[r[known], c[known]] = table.column("weight").to_numpy()[known]
        return scores, weights

    def _files(self, track: str, version_id: str) -> list[Path]:
        directory = self.directory(track, version_id)
        return sorted(directory.glob("*.parquet")) if directory.is_dir() else []


def _span(path: Path) -> tuple[np.datetime64 | None, np.datetime64 | None]:
    """First and last day a batch file holds, from its name (None: not a name we wrote)."""
    try:
        first, last = (dt.datetime.strptime(part, "%Y%m%d").date() for part in
                       path.stem.split("_"))
    except ValueError:
        return None, None
    return np.datetime64(first, "D"), np.datetime64(last, "D")
