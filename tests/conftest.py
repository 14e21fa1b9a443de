"""Shared fixtures: real databases (SQLite files, and PostgreSQL when reachable) and bundles.

PostgreSQL runs when ``PODIUM_TEST_POSTGRES_URL`` is set (CI sets it); each test gets its own
schema, dropped afterwards, so tests never see each other's rows.
"""

from __future__ import annotations

import ast
import fcntl
import os
import pickle
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import Engine, create_engine, text

from registry import migrations
from registry.db import make_engine
from registry.testing import LoopbackS3, register_stand_in, stand_in_version
from trainer.compilation_cache import ENV as JAX_CACHE_ENV

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")
# CLIs run as subprocesses print Rich tables and messages that tests read: wide enough not to
# wrap, whatever terminal (or none) the suite runs in.
os.environ.setdefault("COLUMNS", "200")

POSTGRES_URL = os.environ.get("PODIUM_TEST_POSTGRES_URL")
T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent

BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.skipif(
        not POSTGRES_URL, reason="PODIUM_TEST_POSTGRES_URL not set")),
]


def imported_by(code: str, names: Iterable[str], *, cwd: Path = REPO
                ) -> tuple[list[str], subprocess.CompletedProcess]:
    """Run ``code`` in a fresh interpreter (this one, from ``cwd``); returns which of ``names``
    (top-level packages or dotted modules) it imported, sorted, and the finished process (its
    last line of output is the list). ``code`` failing fails the test."""
    probe = (f"{code}\nimport sys\n"
             f"print(sorted(n for n in {sorted(names)!r} if n in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=cwd, timeout=120)
    assert done.returncode == 0, done.stderr
    return ast.literal_eval(done.stdout.splitlines()[-1]), done


@pytest.fixture(scope="session", autouse=True)
def jax_compilation_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """One JAX compilation cache per worker (``PODIUM_JAX_CACHE_DIR``) for the trainers, shadow
    runs and servers its tests start, instead of a cold one beside each test's artefacts: each
    program is compiled once (about 1.5 s of every trainer run), then loaded. A cache set
    outside the suite (or turned off with the empty string) is left as it is."""
    os.environ.setdefault(JAX_CACHE_ENV, str(tmp_path_factory.getbasetemp() / "jax-cache"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On xdist workers, the modules that hold slow tests first, each module's tests still
    together and in order. ``--dist loadgroup`` hands out the xdist groups first, then the rest
    in this order: the long tests start early and the short ones even out the workers' ends,
    instead of one worker finishing a long test while the other has nothing left."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)  # stable: the order within each kind


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


# --------------------------------------------------------------------------- built once a run


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str,
               build: Callable[[Path], T]) -> T:
    """What ``build(directory)`` returns, built once per test run however many xdist workers
    ask: the first takes a lock in the temporary directory the workers share and builds, the
    others wait for it and reuse what it left (the value pickled beside the files). A build that
    failed leaves nothing, and the next worker to ask tries again. What is built is read only:
    a test copies it (bundles, panels) before it changes anything."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's directory, above each worker's popen-gwN
    directory, value_file = root / f"built-{name}", root / f"built-{name}.pickle"
    with open(root / f"built-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if value_file.exists():
            return pickle.loads(value_file.read_bytes())
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir()
        value = build(directory)
        partial = value_file.with_suffix(".partial")
        partial.write_bytes(pickle.dumps(value))
        partial.rename(value_file)
        return value


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
