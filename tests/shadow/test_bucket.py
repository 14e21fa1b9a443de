"""The shadow runner with its artefacts in a bucket (moto's S3 server on loopback): bundles read
from the bucket through a verified local cache, predictions written to it as Parquet."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlmodel import select

from registry import migrations, store
from registry.config import ObjectStoreConfig
from registry.db import make_engine, read_session, write_session
from registry.integrity import bundle_key, commit_bundle
from registry.models import ShadowError, ShadowScore
from registry.storage import ObjectStore
from shadow.predictions import PredictionStore
from shadow.runner import run_shadow
from tests.conftest import S3_TEST_OPTIONS
from tests.shadow.conftest import artefacts_copy
from tests.zoo.conftest import tiny_config
from trainer.dataset import land_days


def test_shadow_runs_on_a_bucket(trained, db_url: str, tmp_path: Path,
                                 bucket_store: ObjectStore, s3_endpoint: str) -> None:
    template, versions = trained
    root = artefacts_copy(template, tmp_path)
    config = tiny_config(db_url, root)
    config = config.model_copy(update={"object_store": ObjectStoreConfig(
        url=bucket_store.url, endpoint=s3_endpoint, region=S3_TEST_OPTIONS["region"],
        access_key_id=S3_TEST_OPTIONS["access_key_id"],
        secret_access_key=S3_TEST_OPTIONS["secret_access_key"], local_dir=root)})
    engine = make_engine(db_url)
    migrations.upgrade(engine)
    try:
        for version_id, fingerprint, spec in versions:
            key = bundle_key(track=config.track, version_id=version_id)
            commit_bundle(bucket_store, root / key, key)
            with write_session(engine) as session:
                store.register_version(session, track=config.track, version_id=version_id,
                                       fingerprint=fingerprint, artefacts_root=bucket_store,
                                       actor="test", spec_name=spec)
        shutil.rmtree(root / "models")  # only the bucket has the bundles now
        land_days(config.datasets_root, config.market, 4)
        run = run_shadow(config, engine)
        assert run.ran and run.settled == 3 * len(versions), run
        with read_session(engine) as session:
            assert session.exec(select(ShadowError)).all() == []
            assert len(session.exec(select(ShadowScore)).all()) == 3 * len(versions)
        book = PredictionStore(bucket_store, "shadow/predictions")
        for version_id, _, _ in versions:
            assert len(book.predicted_days(config.track, version_id)) >= 3
        assert not (root / "shadow" / "predictions").exists()
        assert len(list((root / "cache" / "bundles").iterdir())) == len(versions)
    finally:
        engine.dispose()
