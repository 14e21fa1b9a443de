"""A small synthetic market, an app on it, and an external version: shared by the tests of
external versions (API, shadow, end to end)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from registry.api import create_app
from registry.config import PodiumConfig
from trainer.dataset import land_days, open_feed

TRACK = "equities-daily"
# the first days landed give every asset the history the runner's book needs (WARMUP_DAYS)
MARKET = {"name": "ext", "seed": 5, "n_assets": 12, "n_days": 180, "initial_days": 140,
          "start_date": "2024-01-01"}
CUTOFF = dt.date(2024, 7, 1)  # a landed day some days before the last landed one (07-12)
SUBMISSION = {"track": TRACK, "label": "vendor-signal", "train_cutoff": CUTOFF.isoformat(),
              "description": "A vendor's daily reversal signal.",
              "uri": "s3://models/vendor/signal-7.pt",
              "digest": "sha256:" + "ab" * 32, "metadata": {"framework": "pytorch", "n": 3}}


def external_config(db_url: str, root: Path, **server: Any) -> PodiumConfig:
    return PodiumConfig.model_validate({"database": {"url": db_url},
                                        "artefacts_root": str(root), "track": TRACK,
                                        "market": MARKET, "server": server})


def expected_version_id(submission: dict[str, Any]) -> str:
    """The id computed independently: SHA-256 over canonical JSON of what was submitted."""
    payload = {"kind": "external", "track": submission["track"], "label": submission["label"],
               "train_cutoff": submission["train_cutoff"],
               "description": submission["description"],
               "provenance": {"uri": submission["uri"], "digest": submission["digest"],
                              "metadata": submission["metadata"]}}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":"))
                            .encode()).hexdigest()
    return f"{submission['label']}-{submission['train_cutoff'].replace('-', '')}-{digest[:8]}"


def landed(config: PodiumConfig) -> list[dt.date]:
    return open_feed(config.datasets_root, config.market).landed_days()


def land(config: PodiumConfig, n: int = 1) -> list[dt.date]:
    return land_days(config.datasets_root, config.market, n)


def next_day(config: PodiumConfig) -> dt.date:
    """The next trading day to land (the market's calendar is business days)."""
    import pandas as pd

    return (pd.Timestamp(landed(config)[-1]) + pd.offsets.BDay(1)).date()


@pytest.fixture
def ext_config(db_url: str, artefacts_root: Path) -> PodiumConfig:
    config = external_config(db_url, artefacts_root, max_body_bytes=4096)
    landed(config)  # the market exists, its first days landed
    return config


@pytest.fixture
def ext_client(engine: Engine, ext_config: PodiumConfig) -> Iterator[TestClient]:
    with TestClient(create_app(ext_config, engine=engine, token_cache_ttl=0.0),
                    raise_server_exceptions=False) as client:
        yield client
