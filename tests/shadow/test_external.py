"""The shadow runner settles external versions from their submitted predictions."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from sqlalchemy import Engine
from sqlmodel import select

from registry.db import read_session, write_session
from registry.errors import AlreadyExists, LookAhead
from registry.external import register_external_version
from registry.models import ShadowScore
from registry.submissions import submit_predictions
from shadow.runner import run_shadow
from tests import external_fixtures
from tests.external_fixtures import CUTOFF, TRACK, land, landed, next_day
from trainer.dataset import open_feed

ext_config = external_fixtures.ext_config


@pytest.fixture
def external(engine: Engine, ext_config) -> str:
    with write_session(engine) as session:
        version, _ = register_external_version(
            session, track=TRACK, label="vendor", train_cutoff=CUTOFF, actor="ana",
            uri="s3://models/vendor.pt")
    return version.version_id


def submit(engine, config, version_id, day, scores: dict[str, float]):
    return submit_predictions(engine, config, version_id=version_id, day=day,
                              assets=list(scores), scores=np.array(list(scores.values())),
                              actor="ana")


def settled(engine: Engine, version_id: str) -> list[ShadowScore]:
    with read_session(engine) as session:
        return list(session.exec(select(ShadowScore).where(ShadowScore.version_id == version_id)
                                 .order_by(ShadowScore.day)))


def book(scores: np.ndarray, per_side: int) -> np.ndarray:
    """Long the top ``per_side`` assets, short the bottom ones, each side summing to one."""
    order = np.argsort(scores, kind="stable")
    weights = np.zeros(len(scores))
    weights[order[:per_side]] = -1 / per_side
    weights[order[-per_side:]] = 1 / per_side
    return weights


def test_submitted_days_settle_like_built_in_ones(engine: Engine, ext_config, external) -> None:
    rng = np.random.default_rng(3)
    assets = [f"A{i:02d}" for i in range(12)]
    submitted: dict[dt.date, np.ndarray] = {}
    formed = [landed(ext_config)[-1]]  # the book for day D is formed on the day before it
    for _ in range(4):  # predictions for the next day, then the day lands
        day = next_day(ext_config)
        submitted[day] = rng.normal(size=12).astype(np.float32).astype(float)
        receipt = submit(engine, ext_config, external, day, dict(zip(assets, submitted[day],
                                                                      strict=True)))
        assert receipt.created and receipt.submission.n_assets == 12
        assert land(ext_config, 1) == [day]
        formed.append(day)
    result = run_shadow(ext_config, engine)
    assert [(v.version_id, v.settled, v.error) for v in result.versions] == [(external, 4, None)]

    rows = settled(engine, external)
    assert [r.day for r in rows] == formed[:-1]
    returns = open_feed(ext_config.datasets_root, ext_config.market).returns()
    quantile, cost_bps = (ext_config.shadow.portfolio.quantile,
                          ext_config.shadow.portfolio.cost_bps)
    per_side = int(np.floor(quantile * 12 + 1e-9))
    previous = None
    for row, day in zip(rows, submitted, strict=True):
        weights = book(submitted[day], per_side)
        outcome = returns.loc[str(day), assets].to_numpy()
        turnover = 0.0 if previous is None else np.abs(weights - previous).sum()
        assert row.gross == pytest.approx(float(weights @ outcome), abs=1e-12)
        assert row.turnover == pytest.approx(turnover, abs=1e-12)
        assert row.cost == pytest.approx(turnover * cost_bps / 1e4, abs=1e-12)
        assert row.net == pytest.approx(row.gross - row.cost, abs=1e-12)
        assert row.n_assets == 12
        previous = weights

    again = run_shadow(ext_config, engine)  # scored once, ever
    assert [v.settled for v in again.versions] == [0]
    assert len(settled(engine, external)) == 4


def test_a_day_waits_for_its_outcome_and_a_settled_day_is_refused(engine: Engine, ext_config,
                                                                  external) -> None:
    scores = {f"A{i:02d}": float(i) for i in range(12)}
    first = next_day(ext_config)
    submit(engine, ext_config, external, first, scores)
    assert run_shadow(ext_config, engine).settled == 0  # its returns have not landed
    land(ext_config, 1)
    second = next_day(ext_config)
    submit(engine, ext_config, external, second, scores)  # submitted before it lands
    assert run_shadow(ext_config, engine).settled == 1
    assert [r.day for r in settled(engine, external)] == [landed(ext_config)[-2]]

    with pytest.raises(LookAhead, match="already settled") as err:
        submit(engine, ext_config, external, landed(ext_config)[-2], scores)
    assert err.value.code == "day_settled"
    assert submit(engine, ext_config, external, first, scores).created is False  # a retry
    with pytest.raises(AlreadyExists, match="already submitted") as exists:
        submit(engine, ext_config, external, first, {**scores, "A00": -1.0})
    assert exists.value.code == "predictions_exist"


def test_missing_assets_are_left_out_of_the_book(engine: Engine, ext_config, external) -> None:
    day = next_day(ext_config)
    submit(engine, ext_config, external, day, {f"A{i:02d}": float(i) for i in range(6)})
    land(ext_config, 1)
    run_shadow(ext_config, engine)
    (row,) = settled(engine, external)
    outcome = open_feed(ext_config.datasets_root, ext_config.market).returns().loc[str(day)]
    per_side = int(np.floor(ext_config.shadow.portfolio.quantile * 6 + 1e-9))
    expected = book(np.arange(6.0), per_side) @ outcome[[f"A{i:02d}" for i in range(6)]]
    assert row.n_assets == 6 and row.gross == pytest.approx(float(expected), abs=1e-12)
