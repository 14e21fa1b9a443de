"""Shared fixtures: real databases (SQLite files, and PostgreSQL when reachable) and bundles.

PostgreSQL runs when ``PODIUM_TEST_POSTGRES_URL`` is set (CI sets it); each test gets its own
schema, dropped afterwards, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from registry import migrations
from registry.db import make_engine
from registry.testing import LoopbackS3, register_stand_in, stand_in_version

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")
# CLIs run as subprocesses print Rich tables and messages that tests read: wide enough not to
# wrap, whatever terminal (or none) the suite runs in.
os.environ.setdefault("COLUMNS", "200")

POSTGRES_URL = os.environ.get("PODIUM_TEST_POSTGRES_URL")
REPO = Path(__file__).resolve().parent.parent

BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.skipif(
        not POSTGRES_URL, reason="PODIUM_TEST_POSTGRES_URL not set")),
]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file in tmp_path, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'podium.db'}"
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated engine (through Alembic, as `registry migrate` does)."""
    engine = make_engine(db_url)
    migrations.upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def artefacts_root(tmp_path: Path) -> Path:
    root = tmp_path / "artefacts"
    root.mkdir()
    return root


BundleFactory = Callable[..., tuple[str, str]]


@pytest.fixture
def make_bundle(artefacts_root: Path) -> BundleFactory:
    """Write a sealed stand-in bundle; returns ``(version_id, fingerprint)``."""

    def _make(label: str = "v1-linear", **identity) -> tuple[str, str]:
        return stand_in_version(artefacts_root, label, **identity)

    return _make


@pytest.fixture
def register(engine: Engine, artefacts_root: Path) -> Callable[..., str]:
    """Make a stand-in bundle and register it as a challenger; returns the version id."""

    def _register(label: str = "v1-linear", **identity) -> str:
        return register_stand_in(engine, artefacts_root, label, **identity)

    return _register


# --------------------------------------------------------------------------- an S3 bucket

S3_TEST_OPTIONS = {"region": "us-east-1", "access_key_id": "podium-test",
                   "secret_access_key": "podium-test-secret-key"}


@pytest.fixture(scope="session")
def s3_server() -> Iterator[LoopbackS3]:
    """moto's standalone S3 server, speaking HTTP on loopback, for the whole session (it counts
    the requests it answers: ``s3_server.take()``)."""
    with LoopbackS3() as server:
        yield server


@pytest.fixture(scope="session")
def s3_endpoint(s3_server: LoopbackS3) -> str:
    return s3_server.endpoint


@pytest.fixture
def bucket_store(s3_server: LoopbackS3):
    """An :class:`~registry.storage.ObjectStore` on a fresh bucket, under a prefix."""
    from registry.storage import ObjectStore

    return ObjectStore(f"s3://{s3_server.make_bucket()}/artefacts",
                       options={**S3_TEST_OPTIONS, "endpoint": s3_server.endpoint},
                       timeout_seconds=10)


@pytest.fixture(params=["local", "s3"])
def any_store(request: pytest.FixtureRequest, artefacts_root: Path):
    """The artefact store, as a local directory and as a bucket."""
    from registry.storage import LocalStore

    if request.param == "local":
        return LocalStore(artefacts_root)
    return request.getfixturevalue("bucket_store")
