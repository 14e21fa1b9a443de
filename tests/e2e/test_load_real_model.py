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

pytestmark = pytest.mark.slow
TINY_MARKET = {"name": "tiny", "n_assets": 30, "n_days": 300, "initial_days": 280}
TINY_TRAIN = {"train_days": 150, "validation_days": 20, "epochs": 2, "batch_size": 512,
              "learning_rate": 0.01, "model": "linear"}


def _train_and_register(engine, artefacts_root: Path, label: str, seed: int) -> str:
    from trainer.config import MarketConfig, ResolvedConfig, RunSettings, TrainConfig
    from trainer.train import train_and_evaluate

    fingerprint = hashlib.sha256(f"{label}-{seed}".encode()).hexdigest()
    version_id = build_version_id(label, dt.date(2025, 6, 30), fingerprint)
    config = ResolvedConfig(
        train=TrainConfig.model_validate({**TINY_TRAIN, "seed": seed, "label": label,
                                          "market": MarketConfig(**TINY_MARKET).model_dump()}),
        run=RunSettings(datasets_root=str(artefacts_root / "datasets")))
    train_and_evaluate(config, artefacts_root / "models" / TRACK / version_id)
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
