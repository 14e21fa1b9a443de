"""Each track is scored on its own data only, under its own lease."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from sqlmodel import select

from registry import migrations, store
from registry.config import TrackConfig
from registry.db import make_engine, read_session, write_session
from registry.models import ShadowScore
from shadow.lease import acquire_lease, release_lease
from shadow.runner import lease_name, run_shadow
from tests.shadow.conftest import artefacts_copy
from tests.zoo.conftest import tiny_config
from trainer.config import MarketConfig
from trainer.dataset import land_days

pytestmark = pytest.mark.slow

OTHER = "other-desk"


@pytest.fixture
def two_tracks(trained, db_url, tmp_path):
    """One trained version on the tiny config's track, another on a second track."""
    template, versions = trained
    root = artefacts_copy(template, tmp_path)
    config = tiny_config(db_url, root)
    (home, home_fp, home_spec), (away, away_fp, away_spec) = versions
    models = root / "models"
    shutil.move(models / config.track / away, models / OTHER / away)
    engine = make_engine(db_url)
    migrations.upgrade(engine)
    for track, version_id, fingerprint, spec in ((config.track, home, home_fp, home_spec),
                                                 (OTHER, away, away_fp, away_spec)):
        with write_session(engine) as session:
            store.register_version(session, track=track, version_id=version_id,
                                   fingerprint=fingerprint, artefacts_root=root, actor="test",
                                   spec_name=spec)
    try:
        yield config, engine, home, away
    finally:
        engine.dispose()


def scores(engine) -> pd.DataFrame:
    with read_session(engine) as session:
        rows = session.exec(select(ShadowScore)).all()
    return pd.DataFrame([r.model_dump() for r in rows], columns=list(ShadowScore.model_fields))


def with_second_track(config):
    """``config`` with the second track added, on its own smaller synthetic market."""
    market = MarketConfig(name="second", seed=99, n_assets=50, n_days=700, initial_days=500,
                          start_date=config.market.start_date)
    return config.model_copy(update={"tracks": (TrackConfig(name=OTHER, market=market),)}), market


def test_a_version_on_another_track_is_never_scored_on_this_tracks_market(two_tracks) -> None:
    """The configuration names one track: a version registered on a second track (trained on
    a second market) must not be settled on the first track's market."""
    config, engine, home, away = two_tracks
    land_days(config.datasets_root, config.market, 10)
    result = run_shadow(config, engine)
    table = scores(engine)
    assert set(table["version_id"]) == {home}
    assert result.unconfigured == {OTHER: [away]}
    assert [v.version_id for v in result.versions] == [home]


def test_each_configured_track_is_scored_on_its_own_data(two_tracks) -> None:
    config, engine, home, away = two_tracks
    config, market = with_second_track(config)
    land_days(config.datasets_root, config.market, 10)
    land_days(config.datasets_root, market, 6)
    result = run_shadow(config, engine)
    assert [t.track for t in result.tracks] == [config.track, OTHER]
    table = scores(engine).set_index("version_id")
    assert set(table.loc[home, "n_assets"]) == {config.market.n_assets}
    assert set(table.loc[away, "n_assets"]) == {market.n_assets}  # its own market's assets
    assert len(table.loc[home]) == 9 and len(table.loc[away]) == 5
    assert result.unconfigured == {}


def test_tracks_hold_separate_leases(two_tracks) -> None:
    """Another runner on one track does not stop this one scoring the other."""
    config, engine, home, away = two_tracks
    config, market = with_second_track(config)
    land_days(config.datasets_root, config.market, 4)
    assert acquire_lease(engine, holder="elsewhere", seconds=60, name=lease_name(OTHER))
    result = run_shadow(config, engine)
    ran = {t.track: t.ran for t in result.tracks}
    assert ran == {config.track: True, OTHER: False}
    assert set(scores(engine)["version_id"]) == {home}
    release_lease(engine, holder="elsewhere", name=lease_name(OTHER))
