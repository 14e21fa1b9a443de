"""A consumer with only a URL and a token: the registry keeps its artefacts in a bucket (moto's
S3 server on loopback), and a separate process, which can see neither the bucket nor any
artefacts directory, downloads the champion's bundle over the API (one tar), verifies and loads
it, follows a promotion, and loads again from its cache without a transfer."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import httpx
from sqlalchemy import Engine

from registry.integrity import bundle_key
from registry.storage import ObjectStore
from registry.testing import (
    DEFAULT_TRACK,
    LoopbackS3,
    RegistryServer,
    bundle_file,
    register_stand_in,
)
from tests.conftest import S3_TEST_OPTIONS

CONSUMER = r"""
import json, sys
from pathlib import Path
from registry.client import load_champion

class Loaded:  # a stand-in bundle holds no model: read what it says it is
    def __init__(self, bundle):
        self.version_id = json.loads((Path(bundle) / "metadata.json").read_text())["version_id"]

url, token, cache, promote_marker = sys.argv[1:5]
with load_champion("equities-daily", url=url, token=token, cache_dir=cache, loader=Loaded,
                   refresh_seconds=0) as champion:
    first = (champion.predictor.version_id, champion.bytes_downloaded)
    print(json.dumps({"first": first}), flush=True)
    sys.stdin.readline()  # the test promotes the other version, then says go on
    champion.refresh()
    print(json.dumps({"second": (champion.predictor.version_id, champion.bytes_downloaded)}),
          flush=True)
with load_champion("equities-daily", url=url, token=token, cache_dir=cache,
                   loader=Loaded) as again:
    print(json.dumps({"cached": (again.predictor.version_id, again.bytes_downloaded)}))
"""


def test_a_consumer_without_the_artefacts_loads_over_the_api(
        engine: Engine, db_url: str, bucket_store: ObjectStore, s3_endpoint: str,
        s3_server: LoopbackS3, tmp_path: Path, tokens: dict[str, str]) -> None:
    first = register_stand_in(engine, bucket_store, "v1-linear", champion=True)
    second = register_stand_in(engine, bucket_store, "v2-mlp")
    server = RegistryServer(database_url=db_url, artefacts_root=bucket_store.url,
                            workdir=tmp_path, config={"server": {"public_reads": False},
                                                      "shadow": {"in_serve": False}})
    server.env.update(AWS_ENDPOINT_URL=s3_endpoint, AWS_REGION=S3_TEST_OPTIONS["region"],
                      AWS_ACCESS_KEY_ID=S3_TEST_OPTIONS["access_key_id"],
                      AWS_SECRET_ACCESS_KEY=S3_TEST_OPTIONS["secret_access_key"])
    consumer_home = tmp_path / "consumer"
    consumer_home.mkdir()
    consumer_env = {k: v for k, v in server.env.items()
                    if not k.startswith(("PODIUM_", "AWS_"))}
    read = {"Authorization": f"Bearer {tokens['read']}"}
    stored_weights = bundle_file(bucket_store, bundle_key(track=DEFAULT_TRACK, version_id=first),
                                 "checkpoint/weights.bin")
    with server, httpx.Client(timeout=60) as http:
        s3_server.take()
        manifest = http.get(f"{server.url}/api/v1/versions/{first}/bundle", headers=read)
        assert manifest.status_code == 200, manifest.text
        assert s3_server.take() == {"GET": 1}  # the server's own copy: the archive, fetched once
        files = {entry["path"]: entry for entry in manifest.json()["files"]}
        assert set(files) == {"SHA256SUMS", "checkpoint/weights.bin", "metadata.json"}
        weights = http.get(f"{server.url}/api/v1/versions/{first}/bundle/checkpoint/"
                            "weights.bin", headers=read)
        assert weights.headers["ETag"] == f'"{files["checkpoint/weights.bin"]["sha256"]}"'
        assert weights.content == stored_weights
        unchanged = http.get(weights.url, headers={**read, "If-None-Match":
                                                    weights.headers["ETag"]})
        assert unchanged.status_code == 304
        anonymous = http.get(f"{server.url}/api/v1/versions/{first}/bundle")
        assert anonymous.status_code == 401
        unknown = http.get(f"{server.url}/api/v1/versions/{first}/bundle/secrets.txt",
                            headers=read)
        assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_bundle_file"
        archive = http.get(f"{server.url}/api/v1/versions/{first}/bundle.tar", headers=read)
        assert archive.status_code == 200, archive.text
        assert archive.headers["ETag"] == f'"{manifest.json()["digest"]}"'
        with tarfile.open(fileobj=io.BytesIO(archive.content)) as tar:
            assert tar.getnames() == [entry["path"] for entry in manifest.json()["files"]]
            assert tar.extractfile("checkpoint/weights.bin").read() == weights.content
        again = http.get(archive.url, headers=read)
        assert again.content == archive.content
        assert s3_server.take() == {}  # every file and archive sent from the server's copy
        assert http.get(archive.url).status_code == 401

        consumer = subprocess.Popen(
            [sys.executable, "-c", CONSUMER, server.url, tokens["read"],
             str(consumer_home / "cache"), "-"], env=consumer_env, cwd=consumer_home,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert consumer.stdout is not None and consumer.stdin is not None
        line = consumer.stdout.readline()
        assert line, consumer.stderr.read() if consumer.stderr else ""
        loaded, downloaded = json.loads(line)["first"]
        assert loaded == first and downloaded == sum(entry["size"] for entry in files.values())
        promoted = http.post(f"{server.url}/api/v1/versions/{second}/promote",
                              headers={"Authorization": f"Bearer {tokens['admin']}"},
                              json={"reason": "test", "force": True})
        assert promoted.status_code == 200, promoted.text
        consumer.stdin.write("go\n")
        consumer.stdin.flush()
        out, err = consumer.communicate(timeout=120)
        assert consumer.returncode == 0, err
        lines = [json.loads(line) for line in out.splitlines()]
        assert lines[0]["second"][0] == second and lines[0]["second"][1] > downloaded
        assert lines[1]["cached"] == [second, 0]  # a cached load transfers nothing
