"""``load_champion`` with the real ``trainer.load_model``: two tiny trained bundles, one swap."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import pytest

from registry import store
from registry.client import Client, load_champion
from registry.db import write_session
from registry.ids import build_version_id
from tests.api.conftest import TRACK
from tests.trainer.conftest import reseal_in_earlier_layout

pytestmark = pytest.mark.slow
TINY_MARKET = {"name": "tiny", "n_assets": 30, "n_days": 300, "initial_days": 280}
TINY_TRAIN = {"train_days": 150, "validation_days": 20, "epochs": 2, "batch_size": 512,
              "learning_rate": 0.01, "model": "linear"}


def _train_and_register(engine, artefacts_root: Path, label: str, seed: int, *,
                        earlier_layout: bool = False) -> str:
    from trainer.config import MarketConfig, ResolvedConfig, RunSettings, TrainConfig
    from trainer.train import train_and_evaluate

    fingerprint = hashlib.sha256(f"{label}-{seed}".encode()).hexdigest()
    version_id = build_version_id(label, dt.date(2025, 6, 30), fingerprint)
    config = ResolvedConfig(
        train=TrainConfig.model_validate({**TINY_TRAIN, "seed": seed, "label": label,
                                          "market": MarketConfig(**TINY_MARKET).model_dump()}),
        run=RunSettings(datasets_root=str(artefacts_root / "datasets")))
    bundle = artefacts_root / "models" / TRACK / version_id
    train_and_evaluate(config, bundle)
    if earlier_layout:
        reseal_in_earlier_layout(bundle)
    with write_session(engine) as session:
        store.register_version(session, track=TRACK, version_id=version_id,
                               fingerprint=fingerprint, artefacts_root=artefacts_root,
                               actor="test")
    return version_id


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the loader needs no second DB
def test_real_predictor_follows_a_promotion(server, tokens, engine, artefacts_root) -> None:
    first = _train_and_register(engine, artefacts_root, "tiny-a", seed=1)
    second = _train_and_register(engine, artefacts_root, "tiny-b", seed=2)
    with Client(server.url, tokens["admin"]) as admin:
        admin.promote(first, "bootstrap", force=True)
        with load_champion(TRACK, url=server.url, token=tokens["read"],
                           artefacts_root=artefacts_root, refresh_seconds=0) as champion:
            width = len(champion.predictor.feature_names)
            features = np.random.default_rng(0).normal(size=(30, width)).astype(np.float32)
            before = champion.predict(features)
            assert champion.version_id == first and before.shape == (30,)
            admin.promote(second, "swap", force=True)
            after = champion.predict(features)
            assert champion.version_id == second
            assert not np.allclose(before, after)  # another model answers


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_score_days_scores_a_returns_frame_through_the_current_champion(
        server, tokens, engine, artefacts_root) -> None:
    from trainer.config import MarketConfig
    from trainer.dataset import open_feed
    from trainer.serving import load_model

    first = _train_and_register(engine, artefacts_root, "tiny-a", seed=1)
    second = _train_and_register(engine, artefacts_root, "tiny-b", seed=2)
    returns = open_feed(artefacts_root / "datasets", MarketConfig(**TINY_MARKET)).returns()
    days = returns.index[-3:]
    with Client(server.url, tokens["admin"]) as admin:
        admin.promote(first, "bootstrap", force=True)
        with load_champion(TRACK, url=server.url, token=tokens["read"],
                           artefacts_root=artefacts_root, refresh_seconds=0) as champion:
            before = champion.score_days(returns, days)
            assert before.attrs["version_id"] == first
            assert list(before.columns) == list(returns.columns) and len(before) == 3
            last = champion.score_days(returns)  # the last day, by default
            assert last.index[0] == returns.index[-1]
            admin.promote(second, "swap", force=True)
            after = champion.score_days(returns, days)
            assert after.attrs["version_id"] == second and champion.version_id == second
    # each answer is exactly what the version's own bundle gives, loaded directly
    for version_id, scored in ((first, before), (second, after)):
        direct = load_model(artefacts_root / "models" / TRACK / version_id)
        expected = direct.score_days(returns, days)
        np.testing.assert_allclose(scored.to_numpy(), expected.to_numpy(), rtol=1e-6)
    assert not np.allclose(before.to_numpy(), after.to_numpy())


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_champion_registered_in_the_earlier_bundle_layout_still_loads(
        server, tokens, engine, artefacts_root) -> None:
    """Bundles are immutable: one sealed with an OCDBT checkpoint (before bundles were
    reproducible) verifies against its registered digest and serves as it did."""
    from trainer.serving import load_model

    earlier = _train_and_register(engine, artefacts_root, "tiny-a", seed=1, earlier_layout=True)
    bundle = artefacts_root / "models" / TRACK / earlier
    assert (bundle / "checkpoint" / "manifest.ocdbt").is_file()
    with Client(server.url, tokens["admin"]) as admin:
        admin.promote(earlier, "bootstrap", force=True)
    with load_champion(TRACK, url=server.url, token=tokens["read"],
                       artefacts_root=artefacts_root, refresh_seconds=0) as champion:
        assert champion.version_id == earlier
        width = len(champion.predictor.feature_names)
        features = np.random.default_rng(0).normal(size=(30, width)).astype(np.float32)
        np.testing.assert_array_equal(champion.predict(features),
                                      load_model(bundle).predict(features))
