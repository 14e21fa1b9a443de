"""The bundled market dataset on disk: ``<datasets_root>/<name>/<fingerprint>/``.

The directory holds the date partitions (see :mod:`trainer.feed`), a ``metadata.json``
(generation parameters, seed, fingerprint, one SHA-256 per landed partition) and a
``README.md``. The fingerprint is the SHA-256 of the canonical JSON of the
:class:`~trainer.config.MarketConfig`; a directory whose fingerprint exists is reused, never
regenerated. Creation lands ``initial_days``; :func:`land_days` lets more days of the same
deterministic path land later, one atomic partition at a time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from trainer.config import MarketConfig
from trainer.feed import PARTITION_FILE, ParquetFeed, day_table, partition_name
from trainer.jsonsafe import canonical_json
from trainer.market import (
    GENERATOR_VERSION,
    MOMENTUM_WINDOW,
    RESIDUAL_MOMENTUM_DAYS,
    asset_ids,
    simulate_returns,
    trading_days,
)

METADATA_FILE = "metadata.json"
_LOCK_FILE = ".lock"


def dataset_fingerprint(config: MarketConfig) -> str:
    """SHA-256 (hex) of the canonical JSON of the market's configuration."""
    return hashlib.sha256(canonical_json(config.model_dump(mode="json")).encode()).hexdigest()


def dataset_dir(datasets_root: str | Path, config: MarketConfig) -> Path:
    return Path(datasets_root) / config.name / dataset_fingerprint(config)


def ensure_dataset(datasets_root: str | Path, config: MarketConfig) -> Path:
    """Return the dataset directory, generating it (``initial_days`` landed) if it is missing.

    Built in a temporary sibling and renamed into place, so a concurrent creator either wins
    or finds the finished directory; an existing fingerprint is never regenerated.
    """
    target = dataset_dir(datasets_root, config)
    if (target / METADATA_FILE).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        returns = simulate_returns(config)
        checksums = _write_days(staging, config, returns, range(config.initial_days))
        (staging / "README.md").write_text(_readme(config), encoding="utf-8")
        _write_metadata(staging, config, checksums)
        try:
            os.rename(staging, target)
        except OSError:  # someone else finished first: theirs is identical by construction
            if not (target / METADATA_FILE).is_file():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def land_days(datasets_root: str | Path, config: MarketConfig, n: int) -> list[dt.date]:
    """Let ``n`` more days of the market land as new partitions; return the days landed.

    Stops at the market's ``n_days`` (returns fewer days, possibly none, when it runs out).
    """
    if n < 0:
        raise ValueError(f"cannot land a negative number of days ({n})")
    directory = ensure_dataset(datasets_root, config)
    with _locked(directory):
        metadata = read_metadata(directory)
        checksums: dict[str, str] = metadata["partitions"]
        first = len(checksums)
        last = min(first + n, config.n_days)
        if last <= first:
            return []
        returns = simulate_returns(config)
        checksums.update(_write_days(directory, config, returns, range(first, last)))
        _write_metadata(directory, config, checksums)
    calendar = trading_days(config)
    return [calendar[k].date() for k in range(first, last)]


def open_feed(datasets_root: str | Path, config: MarketConfig) -> ParquetFeed:
    """The dataset as a feed (created first if needed)."""
    return ParquetFeed(ensure_dataset(datasets_root, config))


def read_metadata(directory: str | Path) -> dict:
    return json.loads((Path(directory) / METADATA_FILE).read_text(encoding="utf-8"))


def _write_days(
    directory: Path, config: MarketConfig, returns: np.ndarray, days: range
) -> dict[str, str]:
    """Write each day atomically (hidden temp dir, then rename); return ``{day: sha256}``."""
    calendar = trading_days(config)
    assets = asset_ids(config)
    checksums = {}
    for k in days:
        day = calendar[k].date()
        final = directory / partition_name(day)
        staging = directory / f".tmp-{partition_name(day)}-{os.getpid()}"
        staging.mkdir(exist_ok=True)
        pq.write_table(day_table(assets, returns[k]), staging / PARTITION_FILE)
        checksums[day.isoformat()] = _sha256(staging / PARTITION_FILE)
        if final.exists():  # an earlier lander died after the rename: same bytes, keep it
            shutil.rmtree(staging)
        else:
            os.rename(staging, final)
    return checksums


def _write_metadata(directory: Path, config: MarketConfig, checksums: dict[str, str]) -> None:
    landed = sorted(checksums)
    metadata = {
        "name": config.name,
        "fingerprint": dataset_fingerprint(config),
        "generator_version": GENERATOR_VERSION,
        "seed": config.seed,
        "generation_params": config.model_dump(mode="json"),
        "n_assets": config.n_assets,
        "landed_days": len(landed),
        "first_day": landed[0] if landed else None,
        "last_day": landed[-1] if landed else None,
        "layout": f"date=YYYY-MM-DD/{PARTITION_FILE}, long format: asset (string), ret (float64)",
        "partitions": checksums,
    }
    tmp = directory / f".{METADATA_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, directory / METADATA_FILE)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    with open(directory / _LOCK_FILE, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _readme(config: MarketConfig) -> str:
    params = "\n".join(
        f"| `{key}` | `{value}` |" for key, value in sorted(config.model_dump(mode="json").items())
    )
    mom_first, mom_last = MOMENTUM_WINDOW
    return f"""# Synthetic market `{config.name}`

Fingerprint `{dataset_fingerprint(config)}` (SHA-256 of the canonical JSON of the parameters
below). Generated by `trainer.market.simulate_returns` (generator version {GENERATOR_VERSION});
the same parameters always give the same returns, so this directory is reused, never rebuilt.

## Model

Daily simple returns of {config.n_assets} assets over {config.n_days} business days from
{config.start_date}:

    r[t, i] = beta[i] * f[t] + alpha[t, i] + idio_vol[i] * eps[t, i]

- `f`: market factor, Student-t noise ({config.tail_dof} degrees of freedom), daily vol
  {config.market_vol}; betas ~ 1 + {config.beta_dispersion} * N(0, 1).
- `eps`: unit-variance Student-t noise; idiosyncratic vols lognormal around {config.idio_vol}.
- `alpha` (known at the close of t-1): minus the last day's residual return (short-term
  reversal), the total return t-{mom_first}..t-{mom_last} (momentum) and the residual return
  t-{RESIDUAL_MOMENTUM_DAYS}..t-1 (residual momentum), each cross-sectionally standardised and
  scaled by a strength that drifts slowly (log-AR(1), half-life
  {config.drift_halflife_days} days, log-sd {config.strength_drift}).

## Layout

One partition per trading day, `date=YYYY-MM-DD/{PARTITION_FILE}`, long format with columns
`asset` (string) and `ret` (float64). {config.initial_days} days land when the dataset is
created; more land later (`shadow feed --days N`), each written to a hidden directory and renamed
into place. `metadata.json` lists every landed partition with its SHA-256.

## Parameters

| parameter | value |
|---|---|
{params}
"""
