"""Two ``registry serve`` replicas on one database and one bucket (moto's S3 server on loopback):
promotions are compare-and-set across both, both resolve a promotion as soon as its response
has returned, and killing one loses nothing the other answered."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy import Engine

from registry.storage import ObjectStore
from registry.testing import RegistryServer, register_stand_in
from tests.conftest import S3_TEST_OPTIONS

TRACK = "equities-daily"


def _replica(name: str, db_url: str, bucket: ObjectStore, endpoint: str, tmp_path: Path
             ) -> RegistryServer:
    workdir = tmp_path / name
    workdir.mkdir()
    server = RegistryServer(database_url=db_url, artefacts_root=bucket.url, workdir=workdir,
                            config={"server": {"public_reads": False},
                                    "shadow": {"in_serve": False}})
    server.env.update(AWS_ENDPOINT_URL=endpoint, AWS_REGION=S3_TEST_OPTIONS["region"],
                      AWS_ACCESS_KEY_ID=S3_TEST_OPTIONS["access_key_id"],
                      AWS_SECRET_ACCESS_KEY=S3_TEST_OPTIONS["secret_access_key"])
    return server


def test_two_replicas_share_one_database_and_bucket(
        engine: Engine, db_url: str, bucket_store: ObjectStore, s3_endpoint: str,
        tmp_path: Path, tokens: dict[str, str]) -> None:
    first = register_stand_in(engine, bucket_store, "v1-linear", champion=True)
    second = register_stand_in(engine, bucket_store, "v2-mlp")
    third = register_stand_in(engine, bucket_store, "v3-gru")
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    read = {"Authorization": f"Bearer {tokens['read']}"}
    a = _replica("a", db_url, bucket_store, s3_endpoint, tmp_path)
    b = _replica("b", db_url, bucket_store, s3_endpoint, tmp_path)

    def champion(server: RegistryServer) -> str:
        answer = http.get(f"{server.url}/api/v1/tracks/{TRACK}/champion", headers=read)
        assert answer.status_code == 200, answer.text
        return answer.json()["version_id"]

    with a, b, httpx.Client(timeout=60) as http:
        promoted = http.post(f"{a.url}/api/v1/versions/{second}/promote", headers=admin,
                             json={"reason": "better", "force": True,
                                   "expected_champion": first})
        assert promoted.status_code == 200, promoted.text
        assert champion(a) == champion(b) == second  # seen by both once answered
        late = http.post(f"{b.url}/api/v1/versions/{third}/promote", headers=admin,
                         json={"reason": "also better", "force": True,
                               "expected_champion": first})
        assert late.status_code == 409 and late.json()["code"] == "champion_changed"
        manifest = http.get(f"{b.url}/api/v1/versions/{second}/bundle", headers=read)
        assert manifest.status_code == 200  # the bundle A's promotion checked, from B

        a.kill()
        assert champion(b) == second
        rolled = http.post(f"{b.url}/api/v1/tracks/{TRACK}/rollback", headers=admin,
                           json={"reason": "regression"})
        assert rolled.status_code == 200, rolled.text
        a.start(healthy=True)
        assert champion(a) == champion(b) == first
        audit = http.get(f"{a.url}/api/v1/tracks/{TRACK}/audit", headers=read).json()["items"]
        assert [entry["action"] for entry in audit][:2] == ["rollback", "promote"]
