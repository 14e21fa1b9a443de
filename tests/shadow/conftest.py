"""Bundles trained once per session on the tiny market; each test registers copies in its db."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from registry import migrations, store
from registry.db import make_engine, read_session, write_session
from tests.zoo.conftest import tiny_config
from zoo.runner import run_spec
from zoo.specs import active_specs

SPECS = ("linear-5d", "resmom")


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> tuple[Path, list[tuple[str, str, str]]]:
    """(artefacts root, [(version_id, fingerprint, spec)]) with two real tiny bundles."""
    base = tmp_path_factory.mktemp("trained")
    url = f"sqlite:///{base / 'template.db'}"
    config = tiny_config(url, base / "artefacts")
    engine = make_engine(url)
    migrations.upgrade(engine)
    for spec in active_specs(config):
        if spec.name in SPECS:
            assert run_spec(config, spec, engine=engine).status == "registered"
    with read_session(engine) as session:
        versions = [(v.version_id, v.fingerprint, v.spec_name)
                    for v in store.list_versions(session)]
    engine.dispose()
    return base / "artefacts", versions


@pytest.fixture
def shadow_env(trained, db_url, tmp_path):
    """A migrated database with the trained versions registered, and its own artefacts copy."""
    template, versions = trained
    root = tmp_path / "artefacts"
    shutil.copytree(template, root, ignore=shutil.ignore_patterns("runs", "runs.parquet"))
    config = tiny_config(db_url, root)
    engine = make_engine(db_url)
    migrations.upgrade(engine)
    for version_id, fingerprint, spec in versions:
        with write_session(engine) as session:
            store.register_version(session, track=config.track, version_id=version_id,
                                   fingerprint=fingerprint, artefacts_root=root, actor="test",
                                   spec_name=spec)
    try:
        yield config, engine, [v[0] for v in versions]
    finally:
        engine.dispose()
