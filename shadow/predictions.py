"""Predictions as Parquet: ``shadow/predictions/<track>/<version_id>/<first>_<last>.parquet``.

Written before outcomes are known, once per (version, day), each batch as one whole object of
the artefact store (on disk through a temporary file and an atomic rename), so a reader never
sees half a batch. Columns: day, asset, score, weight (readable by pandas, DuckDB, Spark or
Trino without Podium, from the directory or straight from the bucket). A batch file is never
rewritten in place, so a process remembers which days each file holds (keyed by its inode, size
and modification time, or its ETag) instead of reading them on every run.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from registry.ids import validate_slug, validate_version_id
from registry.storage import ArtefactStore, StoredObject, open_store

SCHEMA = pa.schema([("day", pa.date32()), ("asset", pa.string()), ("score", pa.float32()),
                    ("weight", pa.float64())])
# Scores are near-unique floats: dictionary-encoding them only costs time.
DICTIONARY_COLUMNS = ["day", "asset", "weight"]
STATISTICS_COLUMNS = ["day"]  # what readers filter on
DAYS_CACHE_FILES = 65536  # batch files whose days a process remembers

_days_lock = threading.Lock()
_days: dict[str, tuple[tuple[int, int, int], list[dt.date]]] = {}


def _file_days(store: ArtefactStore, item: StoredObject) -> list[dt.date]:
    name = f"{store.url}/{item.key}"
    with _days_lock:
        cached = _days.get(name)
    if cached is not None and cached[0] == item.stamp:
        return cached[1]
    days = pq.read_table(store.parquet_source(item.key), columns=["day"]).column(
        "day").unique().to_pylist()
    with _days_lock:
        if len(_days) >= DAYS_CACHE_FILES:
            _days.clear()
        _days[name] = (item.stamp, days)
    return days


class PredictionStore:
    """``root`` is a directory or a store; ``prefix`` the key of the predictions in it."""

    def __init__(self, root: Path | ArtefactStore, prefix: str = "") -> None:
        self.store, self.prefix = open_store(root), prefix.strip("/")

    def key(self, track: str, version_id: str) -> str:
        parts = [validate_slug(track, what="track"), validate_version_id(version_id)]
        return "/".join([self.prefix, *parts] if self.prefix else parts)

    def directory(self, track: str, version_id: str) -> Path | None:
        """The version's directory on a local store (None in a bucket)."""
        return self.store.local_path(self.key(track, version_id))

    def predicted_days(self, track: str, version_id: str) -> list[dt.date]:
        days: set[dt.date] = set()
        for item in self._files(track, version_id):
            days.update(_file_days(self.store, item))
        return sorted(days)

    def write(self, track: str, version_id: str, *, days: Sequence[dt.date],
              assets: Sequence[str], scores: np.ndarray, weights: np.ndarray) -> str:
        """One batch of days × assets, atomically; returns its key."""
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
        target = f"{self.key(track, version_id)}/{days[0]:%Y%m%d}_{days[-1]:%Y%m%d}.parquet"
        # No Arrow schema in the file: readers see SCHEMA's plain types, not dictionaries.
        self.store.put_table(target, table, use_dictionary=DICTIONARY_COLUMNS,
                             write_statistics=STATISTICS_COLUMNS, store_schema=False)
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
        for item in self._files(track, version_id):
            first, last = _span(item.key)
            if first is not None and not ((wanted >= first) & (wanted <= last)).any():
                continue
            table = pq.read_table(self.store.parquet_source(item.key),
                                  filters=pc.field("day").isin(pa.array(wanted)))
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

    def _files(self, track: str, version_id: str) -> list[StoredObject]:
        prefix = self.key(track, version_id)
        return [item for item in self.store.list(prefix)
                if item.key.count("/") == prefix.count("/") + 1
                and item.key.endswith(".parquet") and not item.key.rsplit("/", 1)[1][0] == "."]


def _span(key: str) -> tuple[np.datetime64 | None, np.datetime64 | None]:
    """First and last day a batch file holds, from its name (None: not a name we wrote)."""
    try:
        first, last = (dt.datetime.strptime(part, "%Y%m%d").date() for part in
                       Path(key).stem.split("_"))
    except ValueError:
        return None, None
    return np.datetime64(first, "D"), np.datetime64(last, "D")
