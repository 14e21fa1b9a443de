from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from scipy.stats import spearmanr
from sqlmodel import select

from registry import store
from registry.db import read_session, write_session
from registry.models import ShadowError, ShadowLease, ShadowScore, utcnow
from shadow.lease import acquire_lease, release_lease
from shadow.pipeline import Pipeline
from shadow.predictions import SCHEMA, PredictionStore
from shadow.runner import lease_name, run_shadow, shadowed_versions
from shadow.view import MarketView
from tests.conftest import REPO
from tests.zoo.conftest import TINY
from trainer.dataset import land_days, open_feed
from trainer.features import compute_features

pytestmark = pytest.mark.slow


def scores(engine) -> pd.DataFrame:
    with read_session(engine) as session:
        rows = session.exec(select(ShadowScore)).all()
    return pd.DataFrame([r.model_dump() for r in rows])


def eligible(config, version_id: str, engine) -> list:
    with read_session(engine) as session:
        cutoff = store.get_version(session, version_id).train_cutoff
    days = open_feed(config.datasets_root, config.market).landed_days()
    return [d for d in days[:-1] if d > cutoff]  # the last landed day awaits its outcome


def pipeline_over(config, engine, returns, **kw) -> Pipeline:
    from trainer.sources import DataWindow
    return Pipeline(MarketView(DataWindow(returns, {})), engine,
                    PredictionStore(config.artefacts_root / "shadow/predictions"),
                    artefacts_root=config.artefacts_root, portfolio=config.shadow.portfolio,
                    **kw)


def test_run_scores_every_eligible_day_once(shadow_env) -> None:
    config, engine, versions = shadow_env
    land_days(config.datasets_root, config.market, 30)
    first = run_shadow(config, engine)
    assert first.ran and first.settled == 29 * len(versions)
    table = scores(engine)
    for version_id in versions:
        days = sorted(table[table.version_id == version_id]["day"])
        assert days == eligible(config, version_id, engine)
    again = run_shadow(config, engine)
    assert again.settled == 0 and all(v.predicted == 0 for v in again.versions)
    assert len(scores(engine)) == len(table)
    land_days(config.datasets_root, config.market, 5)
    later = run_shadow(config, engine)
    assert {v.settled for v in later.versions} == {5}
    assert {v.predicted for v in later.versions} == {5}


def test_settled_numbers_follow_from_stored_predictions(shadow_env) -> None:
    """Days settled from the predictions a run has just made and from those an earlier run
    stored (its last day awaited its outcome) give what the Parquet files imply."""
    config, engine, versions = shadow_env
    land_days(config.datasets_root, config.market, 12)
    run_shadow(config, engine)
    land_days(config.datasets_root, config.market, 3)
    run_shadow(config, engine)
    version_id = versions[0]
    directory = PredictionStore(config.artefacts_root / "shadow/predictions").directory(
        config.track, version_id)
    assert all(pq.read_schema(path) == SCHEMA for path in directory.glob("*.parquet"))
    predictions = pq.read_table(directory).to_pandas()
    returns = open_feed(config.datasets_root, config.market).returns()
    days = sorted(predictions["day"].unique())
    row = scores(engine).set_index(["version_id", "day"]).loc[version_id]
    bps = config.shadow.portfolio.cost_bps
    for k, day in enumerate(days[:-1]):
        today = predictions[predictions.day == day].set_index("asset")["weight"]
        assert today[today > 0].sum() == pytest.approx(1) and today[today < 0].sum() == \
            pytest.approx(-1)
        next_day = returns.index[returns.index.get_loc(pd.Timestamp(day)) + 1]
        gross = float((today * returns.loc[next_day, today.index]).sum())
        previous = (predictions[predictions.day == days[k - 1]].set_index("asset")["weight"]
                    if k else today)
        turnover = float((today - previous.reindex(today.index)).abs().sum())
        stored = row.loc[day]
        assert stored["gross"] == pytest.approx(gross, abs=1e-12)
        assert stored["turnover"] == pytest.approx(turnover, abs=1e-9)
        assert stored["cost"] == pytest.approx(turnover * bps / 1e4, abs=1e-12)
        assert stored["net"] == pytest.approx(gross - turnover * bps / 1e4, abs=1e-12)
        day_scores = predictions[predictions.day == day].set_index("asset")["score"]
        expected_ic = spearmanr(day_scores, returns.loc[next_day, day_scores.index]).statistic
        assert stored["rank_ic"] == pytest.approx(expected_ic, abs=1e-12)
    assert row.loc[days[0], "turnover"] == 0  # a version's first book is not charged


def test_a_corrupt_bundle_is_skipped_with_a_recorded_error(shadow_env) -> None:
    config, engine, versions = shadow_env
    land_days(config.datasets_root, config.market, 10)
    broken = versions[0]
    with read_session(engine) as session:
        bundle = config.artefacts_root / store.get_version(session, broken).bundle_path
    target = next(p for p in sorted((bundle / "checkpoint").rglob("*")) if p.is_file()
                  and p.stat().st_size > 0)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    result = run_shadow(config, engine)
    outcome = {v.version_id: v for v in result.versions}
    assert "checksum mismatch" in outcome[broken].error
    assert outcome[versions[1]].settled == 9 and outcome[versions[1]].error is None
    with read_session(engine) as session:
        errors = session.exec(select(ShadowError)).all()
    assert [(e.version_id, e.code) for e in errors] == [(broken, "integrity_failure")]
    assert set(scores(engine)["version_id"]) == {versions[1]}


def test_a_bundle_replaced_by_another_sealed_one_is_skipped(shadow_env) -> None:
    """Every file matches its SHA256SUMS, but SHA256SUMS is not the one registered: the
    version is not scored with weights it was not registered with."""
    config, engine, versions = shadow_env
    land_days(config.datasets_root, config.market, 10)
    replaced, other = versions
    with read_session(engine) as session:
        bundle, donor = (config.artefacts_root / store.get_version(session, v).bundle_path
                         for v in (replaced, other))
    shutil.rmtree(bundle)
    shutil.copytree(donor, bundle)
    result = run_shadow(config, engine)
    outcome = {v.version_id: v for v in result.versions}
    assert "differs from the one registered" in outcome[replaced].error
    assert outcome[other].settled == 9 and outcome[other].error is None
    with read_session(engine) as session:
        errors = session.exec(select(ShadowError)).all()
    assert [(e.version_id, e.code) for e in errors] == [(replaced, "integrity_failure")]
    assert set(scores(engine)["version_id"]) == {other}


def test_predictions_that_cannot_be_stored_leave_that_version_unscored(shadow_env) -> None:
    """Scores are inserted only once their predictions are on disk: where they cannot be
    written, the version gets a recorded storage_error and no score, and the others go on."""
    config, engine, versions = shadow_env
    land_days(config.datasets_root, config.market, 10)
    store = PredictionStore(config.artefacts_root / "shadow/predictions")
    blocked = store.directory(config.track, versions[0])
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_text("a file where the version's directory goes")
    result = run_shadow(config, engine)
    outcome = {v.version_id: v for v in result.versions}
    assert "cannot store predictions" in outcome[versions[0]].error
    assert outcome[versions[0]].settled == outcome[versions[0]].predicted == 0
    assert outcome[versions[1]].settled == 9 and outcome[versions[1]].error is None
    assert set(scores(engine)["version_id"]) == {versions[1]}
    with read_session(engine) as session:
        errors = session.exec(select(ShadowError)).all()
    assert [(e.version_id, e.code) for e in errors] == [(versions[0], "storage_error")]
    blocked.unlink()  # space again: the next run catches up
    again = {v.version_id: v for v in run_shadow(config, engine).versions}
    assert again[versions[0]].settled == 9 and again[versions[1]].settled == 0
    assert not list(blocked.glob(".*.tmp"))


def test_predictions_without_outcomes_are_settled_by_the_next_run(shadow_env) -> None:
    """A run killed after predicting (before settling) left no score; the next run finishes."""
    config, engine, versions = shadow_env
    land_days(config.datasets_root, config.market, 8)
    feed = open_feed(config.datasets_root, config.market)
    with pipeline_over(config, engine, feed.returns()) as pipeline:
        for version in shadowed_versions(engine):
            assert len(pipeline.predict(pipeline.prepare(version)).days) == 8
    assert scores(engine).empty
    result = run_shadow(config, engine)
    assert {v.predicted for v in result.versions} == {0}
    assert {v.settled for v in result.versions} == {7}


def test_each_feature_configuration_is_computed_once_a_run(shadow_env, monkeypatch) -> None:
    """Each feature configuration's features are computed once per run: the first one needed on
    the main thread, the others on the features thread meanwhile."""
    config, engine, versions = shadow_env
    land_days(config.datasets_root, config.market, 6)
    computed = []

    def counted(matrix, train_config, extras=None, **shared):
        computed.append((train_config.residual_momentum, threading.current_thread().name))
        return compute_features(matrix, train_config, extras, **shared)

    monkeypatch.setattr("shadow.view.compute_features", counted)
    feed = open_feed(config.datasets_root, config.market)
    with pipeline_over(config, engine, feed.returns(), settles_from=0) as context:
        work = [context.prepare(version) for version in shadowed_versions(engine)]
        order = context.schedule(work)
        assert len({item.feature_key for item in order}) == 2
        for item in order:
            context.shadow(item)
    threads = sorted(name.split("_")[0] for _, name in computed)
    assert len(computed) == 2 and threads == ["MainThread", "shadow-features"]
    assert [item.outcome.settled for item in work] == [5, 5]
    assert len(scores(engine)) == 10


def test_a_runner_that_loses_its_lease_mid_run_stops_cleanly(shadow_env, monkeypatch) -> None:
    """Another holder takes the lease mid-run: the runner stops before the next version,
    without an error (writes not yet started are dropped), and what it did score is whole."""
    config, engine, versions = shadow_env
    land_days(config.datasets_root, config.market, 10)
    monkeypatch.setattr("shadow.runner.RENEW_FRACTION", 0.0)  # renew before every version

    def steal(version_id: str, done: int, total: int) -> None:
        if done == 1:  # the first version is predicted and queued: someone takes over
            with write_session(engine) as session:
                lease = session.exec(select(ShadowLease)).one()
                lease.holder, lease.expires_at = "thief", utcnow() + dt.timedelta(hours=1)
                session.add(lease)
                session.commit()

    result = run_shadow(config, engine, progress=steal)
    assert not result.ran and "lost the shadow lease" in result.detail
    assert len(result.versions) == 1  # the one it had started
    table = scores(engine)
    assert set(table.get("version_id", [])) <= {result.versions[0].version_id}
    assert len(table) in (0, 9)  # all of a version's days, or none
    again = run_shadow(config, engine)  # the lease is the thief's until it expires
    assert not again.ran


def test_the_lease_admits_one_runner(shadow_env) -> None:
    config, engine, _ = shadow_env
    name = lease_name(config.track)
    assert acquire_lease(engine, holder="a", seconds=60, name=name) is not None
    assert acquire_lease(engine, holder="b", seconds=60, name=name) is None
    assert acquire_lease(engine, holder="a", seconds=60, name=name) is not None  # renewal
    skipped = run_shadow(config, engine, holder="b")
    assert not skipped.ran and "another runner holds the shadow lease" in skipped.detail
    release_lease(engine, holder="a", name=name)
    assert acquire_lease(engine, holder="b", seconds=0.0) is not None  # expires at once
    assert acquire_lease(engine, holder="a", seconds=60) is not None  # expired: taken over
    release_lease(engine, holder="a")


def test_two_runner_processes_at_once_score_each_day_once(shadow_env, db_url) -> None:
    config, engine, versions = shadow_env
    land_days(config.datasets_root, config.market, 25)
    env = {**os.environ, "PODIUM_DATABASE_URL": db_url,
           "PODIUM_ARTEFACTS_ROOT": str(config.artefacts_root), "WANDB_MODE": "disabled"}
    shadow = str(Path(sys.executable).parent / "shadow")
    runners = [subprocess.Popen([shadow, "run", "--config", str(TINY)], env=env, cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    outputs = [r.communicate(timeout=180) for r in runners]
    # Both ran one after the other (0, 0), or one stood down: exit 3, naming the holder.
    assert sorted(r.returncode for r in runners) in ([0, 0], [0, 3]), outputs
    assert all("another runner holds the shadow lease (host " in out
               for r, (out, _) in zip(runners, outputs, strict=True) if r.returncode == 3)
    table = scores(engine)
    assert len(table) == 24 * len(versions)
    assert not table.duplicated(["version_id", "day"]).any()
    assert np.isfinite(table[["gross", "turnover", "cost", "net"]].to_numpy()).all()

