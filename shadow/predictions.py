"""Predictions as Parquet: ``shadow/predictions/<track>/<version_id>/<first>_<last>.parquet``.

Written before outcomes are known, once per (version, day), each batch through a temporary file
and an atomic rename, so a reader never sees half a batch. Columns: day, asset, score, weight
(readable by pandas, DuckDB, Spark or Trino without Podium).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from registry.ids import validate_slug, validate_version_id

SCHEMA = pa.schema([("day", pa.date32()), ("asset", pa.string()), ("score", pa.float32()),
                    ("weight", pa.float64())])


class PredictionStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def directory(self, track: str, version_id: str) -> Path:
        return self.root / validate_slug(track, what="track") / validate_version_id(version_id)

    def predicted_days(self, track: str, version_id: str) -> list[dt.date]:
        days: set[dt.date] = set()
        for path in self._files(track, version_id):
            days.update(pq.read_table(path, columns=["day"]).column("day").unique().to_pylist())
        return sorted(days)

    def write(self, track: str, version_id: str, *, days: Sequence[dt.date],
              assets: Sequence[str], scores: np.ndarray, weights: np.ndarray) -> Path:
        """One batch of days × assets, atomically."""
        n_days, n_assets = scores.shape
        table = pa.table({
            "day": pa.array(np.repeat(np.array(days, dtype="datetime64[D]"), n_assets)),
            "asset": pa.array(np.tile(np.asarray(assets, dtype=object), n_days), pa.string()),
            "score": pa.array(scores.reshape(-1).astype(np.float32)),
            "weight": pa.array(weights.reshape(-1).astype(np.float64)),
        }, schema=SCHEMA)
        directory = self.directory(track, version_id)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / f"{days[0]:%Y%m%d}_{days[-1]:%Y%m%d}.parquet"
        tmp = directory / f".{target.name}.{os.getpid()}.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, target)
        return target

    def read(self, track: str, version_id: str, days: Sequence[dt.date],
             assets: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Scores and weights ``[len(days), len(assets)]`` for predicted days."""
        wanted = set(days)
        row = {day: k for k, day in enumerate(days)}
        col = {asset: k for k, asset in enumerate(assets)}
        scores = np.full((len(days), len(assets)), np.nan)
        weights = np.zeros((len(days), len(assets)))
        for path in self._files(track, version_id):
            table = pq.read_table(path)
            day_values = table.column("day").to_pylist()
            if not wanted.intersection(day_values):
                continue
            frame = table.to_pandas()
            frame = frame[frame["day"].isin(wanted)]
            r = frame["day"].map(row).to_numpy()
            c = frame["asset"].map(col).to_numpy()
            known = ~np.isnan(c.astype(float))
            scores[r[known], c[known].astype(int)] = frame["score"].to_numpy()[known]
            weights[r[known], c[known].astype(int)] = frame["weight"].to_numpy()[known]
        return scores, weights

    def _files(self, track: str, version_id: str) -> list[Path]:
        directory = self.directory(track, version_id)
        return sorted(directory.glob("*.parquet")) if directory.is_dir() else []
