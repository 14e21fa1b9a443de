"""Shadow runs on a user's panel: a moving universe, thin days, rewritten history, bad data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlmodel import select

from registry.db import read_session
from registry.errors import HistoryChanged, InvalidData
from registry.landing import landed_days, last_landed
from registry.models import ShadowScore
from shadow.predictions import PredictionStore
from shadow.runner import run_shadow
from tests.conftest import REPO
from tests.shadow.conftest import OWN_DATA, PANEL_LANDED, land_panel

pytestmark = pytest.mark.slow


def scores(engine) -> pd.DataFrame:
    with read_session(engine) as session:
        rows = session.exec(select(ShadowScore)).all()
    return pd.DataFrame([r.model_dump() for r in rows], columns=list(ShadowScore.model_fields))


def partition(config, day) -> Path:
    return Path(config.data.path) / f"date={day.isoformat()}" / "part-0.parquet"


def rewrite(path: Path, change) -> None:
    """Replace a landed partition (as a careless pipeline would): ``change`` edits its rows."""
    frame = change(pq.read_table(path).to_pandas())
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)


def shadow_cli(config, *args: str) -> subprocess.CompletedProcess:
    config_file = Path(config.data.path).parent / "podium.yaml"
    text = OWN_DATA.read_text().replace("../../var/own-data/panel", config.data.path)
    config_file.write_text(text)
    env = {**os.environ, "PODIUM_DATABASE_URL": config.database.url,
           "PODIUM_ARTEFACTS_ROOT": str(config.artefacts_root), "WANDB_MODE": "disabled"}
    shadow = str(Path(sys.executable).parent / "shadow")
    return subprocess.run([shadow, *args, "--config", str(config_file)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_landing_days_are_scored_and_the_universe_moves(panel_env) -> None:
    config, engine, versions = panel_env
    assert len(landed_days(config)) == PANEL_LANDED
    land_panel(Path(config.data.path), PANEL_LANDED + 30)
    assert last_landed(config) == landed_days(config, config.track)[-1]
    result = run_shadow(config, engine)
    track = result.tracks[0]
    assert track.ran and track.error is None
    assert result.settled == 29 and track.universe.entered > 0 and track.universe.left > 0
    table = scores(engine)
    assert np.isfinite(table[["gross", "turnover", "cost", "net"]].to_numpy()).all()
    assert table["n_assets"].max() <= 60


def test_a_held_asset_that_stops_reporting_is_closed_and_costed(panel_env) -> None:
    """Day t's book holds an asset; it does not report on t+1: its position earns 0 that day
    and is sold the next, so the sale shows in turnover and cost."""
    config, engine, (version_id,) = panel_env
    land_panel(Path(config.data.path), PANEL_LANDED + 1)
    run_shadow(config, engine)  # predicts day t (the last landed), settles nothing yet
    days = landed_days(config)
    t = days[-1]
    book = PredictionStore(config.artefacts_root / "shadow/predictions")
    weights = pq.read_table(book.directory(config.track, version_id)).to_pandas()
    held = weights[(weights.day == t) & (weights.weight > 0)]
    gone = held.sort_values("asset")["asset"].iloc[0]
    land_panel(Path(config.data.path), PANEL_LANDED + 3)
    after = landed_days(config)[len(days)]
    rewrite(partition(config, after), lambda rows: rows[rows.asset != gone])  # before any use
    result = run_shadow(config, engine)
    assert result.tracks[0].universe.closed_positions >= 1
    row = scores(engine).set_index("day").loc[t]
    returns = pq.read_table(partition(config, after)).to_pandas().set_index("asset")["ret"]
    today = weights[weights.day == t].set_index("asset")["weight"]
    expected = float((today * returns.reindex(today.index).fillna(0.0)).sum())
    assert row["gross"] == pytest.approx(expected, abs=1e-12)
    assert np.isfinite(row["net"])
    sold = pq.read_table(book.directory(config.track, version_id)).to_pandas()
    next_book = sold[sold.day == after].set_index("asset")["weight"]
    assert next_book.get(gone, 0.0) == 0.0  # no print, no score, no weight: the sale is traded


def test_a_day_with_too_few_assets_is_skipped_with_a_reason(panel_env) -> None:
    config, engine, _ = panel_env
    land_panel(Path(config.data.path), PANEL_LANDED + 4)
    thin = landed_days(config)[PANEL_LANDED + 1]
    rewrite(partition(config, thin), lambda rows: rows.head(5))
    result = run_shadow(config, engine)
    skipped = result.tracks[0].universe.skipped_days
    assert list(skipped) == [thin] and "5 asset(s)" in skipped[thin]
    assert thin not in set(scores(engine)["day"]) and result.settled == 2


def test_a_rewritten_day_is_refused_naming_it_and_nothing_is_recomputed(panel_env) -> None:
    config, engine, _ = panel_env
    land_panel(Path(config.data.path), PANEL_LANDED + 5)
    run_shadow(config, engine)
    before = scores(engine)
    used = landed_days(config)[-2]
    rewrite(partition(config, used), lambda rows: rows.assign(ret=rows.ret * 1.01))
    land_panel(Path(config.data.path), PANEL_LANDED + 8)
    result = run_shadow(config, engine)
    error = result.tracks[0].error
    assert isinstance(error, HistoryChanged) and error.code == "history_changed"
    assert f"the data of {used.isoformat()} changed after it was used" in error.detail
    pd.testing.assert_frame_equal(scores(engine), before)  # nothing scored, nothing recomputed
    cli = shadow_cli(config, "run")
    assert cli.returncode == 2 and f"{used.isoformat()} changed after it was used" in cli.stderr
    assert "Traceback" not in cli.stderr


def test_bad_data_is_refused_with_exit_2_and_nothing_scored(panel_env) -> None:
    config, engine, _ = panel_env
    land_panel(Path(config.data.path), PANEL_LANDED + 3)
    bad = landed_days(config)[-1]
    rewrite(partition(config, bad), lambda rows: rows.assign(  # a text column, as CSV exports go
        ret=rows.ret.map(str).where(rows.index != 3, "n/a")))
    result = run_shadow(config, engine)
    error = result.tracks[0].error
    assert isinstance(error, InvalidData) and error.code == "invalid_data"
    assert f"date={bad.isoformat()}/part-0.parquet: row 4: ret 'n/a' is not a number" in \
        error.detail
    assert scores(engine).empty
    cli = shadow_cli(config, "run")
    assert cli.returncode == 2 and "row 4: ret 'n/a' is not a number" in cli.stderr


def test_feed_is_for_the_synthetic_market_only(panel_env) -> None:
    config, _, _ = panel_env
    cli = shadow_cli(config, "feed", "--days", "3")
    assert cli.returncode == 2
    assert "`shadow feed` lands days of the bundled synthetic market only" in cli.stderr
    assert len(landed_days(config)) == PANEL_LANDED  # nothing was written into the panel


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # no database read
def test_same_data_same_version_id_different_data_different(panel_env, tmp_path) -> None:
    """The version id follows the training window's content: a copy of the panel elsewhere
    gives the same id, a changed day inside the window another one."""
    from zoo.runner import resolve_for_data

    config, _, (version_id,) = panel_env
    spec = next(s for s in config.model_specs if s.name == "revision")
    assert resolve_for_data(config, spec).version_id == version_id
    copy = tmp_path / "elsewhere"
    shutil.copytree(config.data.path, copy)
    moved = config.model_copy(update={"trainer": config.trainer.model_copy(
        update={"panel": config.data.model_copy(update={"path": str(copy)})})})
    assert resolve_for_data(moved, spec).version_id == version_id
    rewrite(sorted(copy.glob("date=*"))[-10] / "part-0.parquet",
            lambda rows: rows.assign(ret=rows.ret + 0.001))
    changed = resolve_for_data(moved, spec)
    assert changed.version_id != version_id
    assert changed.version_id.rsplit("-", 1)[0] == version_id.rsplit("-", 1)[0]  # same label, day
