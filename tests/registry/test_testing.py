"""registry.testing: stand-in bundles pass the integrity checks; a server is up when started."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from registry import store
from registry.db import read_session
from registry.testing import (
    RegistryServer,
    register_stand_in,
    stand_in_version,
    write_stand_in_bundle,
)
from trainer.checksums import IntegrityError, verified_digest


def test_a_stand_in_bundle_is_sealed_and_rewrites_to_the_same_bytes(tmp_path: Path) -> None:
    version_id, fingerprint = stand_in_version(tmp_path, "v1-linear", seed="a")
    bundle = tmp_path / "models" / "equities-daily" / version_id
    digest = verified_digest(bundle)
    assert version_id.endswith(fingerprint[:8])
    assert stand_in_version(tmp_path, "v1-linear", seed="a") == (version_id, fingerprint)
    assert verified_digest(bundle) == digest
    (bundle / "checkpoint" / "weights.bin").write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match="weights.bin"):
        verified_digest(bundle)
    write_stand_in_bundle(tmp_path, version_id)
    assert verified_digest(bundle) == digest


def test_a_registered_stand_in_can_be_crowned(engine: Engine, artefacts_root: Path) -> None:
    challenger = register_stand_in(engine, artefacts_root, "v2-mlp")
    champion = register_stand_in(engine, artefacts_root, "v1-linear", champion=True)
    with read_session(engine) as session:
        assert store.resolve_champion(session, "equities-daily").version_id == champion
        assert store.get_version(session, challenger).state == "challenger"


def test_a_started_server_answers_and_a_stopped_one_does_not(tmp_path: Path) -> None:
    server = RegistryServer(database_url=f"sqlite:///{tmp_path / 'podium.db'}",
                            artefacts_root=tmp_path, workdir=tmp_path,
                            config={"shadow": {"in_serve": False}})
    try:
        server.start()  # any answer will do: the database is not migrated
        assert httpx.get(f"{server.url}/api/v1/health").status_code == 503
    finally:
        server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/api/v1/health")


def test_a_server_that_cannot_start_says_why(tmp_path: Path) -> None:
    server = RegistryServer(database_url="sqlite:///x.db", artefacts_root=tmp_path,
                            workdir=tmp_path, config={"no_such_key": 1})
    with pytest.raises(RuntimeError, match=r"the server exited \(2\) before answering(.|\n)*"
                                           r"no_such_key"):
        server.start()
