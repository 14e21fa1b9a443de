"""The synthetic market and its date-partitioned store."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from trainer.checksums import sha256_file
from trainer.config import MarketConfig
from trainer.dataset import (
    dataset_dir,
    dataset_fingerprint,
    ensure_dataset,
    land_days,
    open_feed,
)
from trainer.feed import PARTITION_FILE, ParquetFeed, clear_cache, day_table
from trainer.jsonsafe import canonical_json
from trainer.market import simulate_returns, trading_days


def test_same_config_same_market_and_seed_changes_it(tiny_market: MarketConfig) -> None:
    first, again = simulate_returns(tiny_market), simulate_returns(tiny_market)
    np.testing.assert_array_equal(first, again)
    other = simulate_returns(tiny_market.model_copy(update={"seed": tiny_market.seed + 1}))
    assert first.shape == (tiny_market.n_days, tiny_market.n_assets)
    assert not np.allclose(first, other)
    assert np.isfinite(first).all()


def test_fingerprint_is_sha256_of_canonical_json(tiny_market: MarketConfig) -> None:
    import hashlib

    expected = hashlib.sha256(
        json.dumps(
            tiny_market.model_dump(mode="json"), sort_keys=True, separators=(",", ":")
        ).encode()
    ).hexdigest()
    assert dataset_fingerprint(tiny_market) == expected
    assert " " not in canonical_json({"b": 1, "a": [1, 2]})
    assert dataset_fingerprint(tiny_market.model_copy(update={"seed": 99})) != expected


def test_dataset_created_with_initial_days_and_reused(tmp_path: Path) -> None:
    market = MarketConfig(name="reuse", n_assets=12, n_days=150, initial_days=100)
    directory = ensure_dataset(tmp_path, market)
    assert directory == dataset_dir(tmp_path, market)
    metadata = json.loads((directory / "metadata.json").read_text())
    assert metadata["fingerprint"] == dataset_fingerprint(market)
    assert metadata["seed"] == market.seed and metadata["landed_days"] == 100
    assert (directory / "README.md").read_text().startswith("# Synthetic market")
    stamp = (directory / "metadata.json").stat().st_mtime_ns
    assert ensure_dataset(tmp_path, market) == directory
    assert (directory / "metadata.json").stat().st_mtime_ns == stamp  # reused, not rebuilt

    feed = ParquetFeed(directory)
    days = feed.landed_days()
    assert days == [ts.date() for ts in trading_days(market)[:100]]
    for day in days[:3]:
        partition = directory / f"date={day.isoformat()}" / PARTITION_FILE
        assert metadata["partitions"][day.isoformat()] == sha256_file(partition)


def test_landing_reveals_the_same_path_atomically(tmp_path: Path) -> None:
    market = MarketConfig(name="land", n_assets=12, n_days=130, initial_days=100)
    landed = land_days(tmp_path, market, 20)
    assert len(landed) == 20
    feed = open_feed(tmp_path, market)
    assert len(feed.landed_days()) == 120 and feed.landed_days()[-20:] == landed
    np.testing.assert_allclose(feed.returns().to_numpy(), simulate_returns(market)[:120])
    assert land_days(tmp_path, market, 50) == feed.landed_days()[120:]  # stops at n_days
    assert land_days(tmp_path, market, 5) == []
    directory = dataset_dir(tmp_path, market)
    assert not [p for p in directory.iterdir() if p.name.startswith(".tmp")]
    assert json.loads((directory / "metadata.json").read_text())["landed_days"] == 130


def test_feed_reads_a_window_and_ignores_half_written_days(tmp_path: Path) -> None:
    market = MarketConfig(name="window", n_assets=12, n_days=100, initial_days=80)
    directory = ensure_dataset(tmp_path, market)
    (directory / ".tmp-date=2030-01-01-1").mkdir()  # a day still being written
    (directory / "date=2030-01-02").mkdir()  # a directory with no partition file yet
    feed = ParquetFeed(directory)
    days = feed.landed_days()
    assert len(days) == 80
    frame = feed.returns(days[10], days[19])
    assert frame.shape == (10, 12) and frame.index[0].date() == days[10]
    assert list(frame.columns[:2]) == ["A00", "A01"]


def test_a_day_replaced_in_the_feed_is_read_again_and_universes_are_aligned(
    tmp_path: Path,
) -> None:
    """Decoded days are kept per process; a partition renamed over (a vendor's correction) or
    rewritten is read again, and a day with a different universe is aligned by asset name."""
    market = MarketConfig(name="replaced", n_assets=10, n_days=60, initial_days=40)
    directory = ensure_dataset(tmp_path, market)
    feed = ParquetFeed(directory)
    days = feed.landed_days()
    before = feed.returns(days[20], days[29])
    assert feed.returns(days[20], days[29]).equals(before)  # from memory: the same frame
    day = directory / f"date={days[25].isoformat()}"
    staged = tmp_path / "staged.parquet"
    pq.write_table(day_table(["A5", "A0", "ZZ"], np.array([0.5, 0.25, 9.0])), staged)
    os.replace(staged, day / PARTITION_FILE)  # a corrected file renamed into place
    after = feed.returns(days[20], days[29])
    row = after.loc[str(days[25])]
    assert row["A5"] == 0.5 and row["A0"] == 0.25 and "ZZ" not in after.columns
    assert row.drop(["A5", "A0"]).isna().all()
    assert after.drop(index=str(days[25])).equals(before.drop(index=str(days[25])))
    clear_cache()
    assert feed.returns(days[20], days[29]).equals(after)


def test_landing_a_negative_number_of_days_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="negative"):
        land_days(tmp_path, MarketConfig(n_assets=10, n_days=80, initial_days=60), -1)
