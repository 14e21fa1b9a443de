"""``<artefacts_root>/runs.parquet``: one row per training run, whatever its outcome.

Rewritten whole through a temporary file and an atomic rename, under a lock file, so a reader
(pandas, DuckDB, …) never sees half a table and two zoo processes never lose each other's rows.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

RUNS_FILE = "runs.parquet"
STATUSES = ("registered", "skipped", "failed", "timeout", "retrained")


@dataclass
class RunRecord:
    run_id: str
    spec: str
    version_id: str
    status: str
    started_at: dt.datetime
    duration_seconds: float
    train_cutoff: dt.date | None = None
    message: str = ""
    bundle_path: str = ""
    log_path: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        row = asdict(self)
        row["metrics"] = json.dumps(self.metrics, sort_keys=True)
        row["train_cutoff"] = self.train_cutoff.isoformat() if self.train_cutoff else None
        return row


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".runs.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def append_run(artefacts_root: Path, record: RunRecord) -> None:
    path = Path(artefacts_root) / RUNS_FILE
    with _locked(Path(artefacts_root)):
        new = pd.DataFrame([record.row()])
        table = pd.concat([read_runs(artefacts_root), new], ignore_index=True) \
            if path.exists() else new
        tmp = path.with_suffix(f".tmp-{os.getpid()}")
        try:
            table.to_parquet(tmp, index=False)
            os.replace(tmp, path)
        finally:  # a full disk leaves no half-written runs.tmp-* behind
            tmp.unlink(missing_ok=True)


def read_runs(artefacts_root: Path) -> pd.DataFrame:
    path = Path(artefacts_root) / RUNS_FILE
    if not path.exists():
        return pd.DataFrame(columns=list(RunRecord.__dataclass_fields__))
    return pd.read_parquet(path)


def last_runs_by_spec(artefacts_root: Path) -> dict[str, dict[str, Any]]:
    runs = read_runs(artefacts_root)
    if runs.empty:
        return {}
    latest = runs.sort_values("started_at").groupby("spec").tail(1)
    return {row["spec"]: row for row in latest.to_dict("records")}
