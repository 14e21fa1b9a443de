"""The artefact store: bundles committed, verified, refused when damaged, on disk and in a bucket
(moto's S3 server on loopback, reached over HTTP by the real client)."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.fs as pafs
import pytest
from sqlalchemy import Engine

from registry import promotion, store
from registry.bundle_archive import read_files
from registry.config import parse_config
from registry.db import read_session, write_session
from registry.errors import IntegrityFailure
from registry.integrity import (
    archive_key,
    bundle_exists,
    bundle_key,
    commit_bundle,
    fetch_bundle,
    manifest,
    remove_bundle,
    verified_local_bundle,
    verify_stored_bundle,
)
from registry.storage import ObjectStore, StorageUnavailable, artefact_store
from registry.testing import (
    DEFAULT_TRACK,
    LoopbackS3,
    bundle_file,
    free_port,
    register_stand_in,
    stand_in_version,
    tamper_with_bundle,
    wait_until_answering,
    write_stand_in_bundle,
)
from shadow.predictions import PredictionStore
from tests.conftest import S3_TEST_OPTIONS
from trainer.checksums import write_sha256sums

# one worker runs this module: its module fixture is built once
pytestmark = pytest.mark.xdist_group("s3-storage")


def _promote(engine: Engine, artefacts, version_id: str) -> None:
    with write_session(engine) as session:
        promotion.promote_version(session, version_id=version_id, actor="test", reason="test",
                                  gate=None, force=True, artefacts_root=artefacts)


def test_registered_bundle_altered_or_missing_is_refused(engine: Engine, any_store) -> None:
    first = register_stand_in(engine, any_store, "v1-linear", champion=True)
    second = register_stand_in(engine, any_store, "v2-mlp")
    with read_session(engine) as session:
        version = store.get_version(session, second)
    assert version.bundle_path == bundle_key(track=DEFAULT_TRACK, version_id=second)
    weights = "checkpoint/weights.bin"
    original = bundle_file(any_store, version.bundle_path, weights)
    tamper_with_bundle(any_store, version.bundle_path, weights, b"swapped")
    with pytest.raises(IntegrityFailure, match="checksum mismatch for checkpoint/weights.bin"):
        _promote(engine, any_store, second)
    tamper_with_bundle(any_store, version.bundle_path, weights, None)
    with pytest.raises(IntegrityFailure, match="listed in SHA256SUMS but missing"):
        _promote(engine, any_store, second)
    tamper_with_bundle(any_store, version.bundle_path, weights, original)
    _promote(engine, any_store, second)  # intact again: served
    tamper_with_bundle(any_store, bundle_key(track=DEFAULT_TRACK, version_id=first),
                       "metadata.json", b"{}\n")
    with write_session(engine) as session, pytest.raises(IntegrityFailure,
                                                         match="checksum mismatch"):
        store.rollback_track(session, track=DEFAULT_TRACK, actor="test", reason="bad release",
                             artefacts_root=any_store)
    with read_session(engine) as session:
        assert store.resolve_champion(session, DEFAULT_TRACK).version_id == second


def test_manifest_and_cached_fetch(any_store, tmp_path: Path) -> None:
    version_id, _ = stand_in_version(any_store)
    key = bundle_key(track=DEFAULT_TRACK, version_id=version_id)
    digest = verify_stored_bundle(any_store, key)
    local = verified_local_bundle(any_store, key, expected_digest=digest,
                                  cache_root=tmp_path / "cache")
    files = manifest(local)
    assert [entry["path"] for entry in files] == [
        "SHA256SUMS", "checkpoint/weights.bin", "metadata.json"]
    assert files[0]["sha256"] == digest and files[1]["size"] == 256
    assert (local / "checkpoint" / "weights.bin").read_bytes() == bundle_file(
        any_store, key, "checkpoint/weights.bin")
    if isinstance(any_store, ObjectStore):
        assert local == tmp_path / "cache" / digest
        assert remove_bundle(any_store, key) > 256 and not bundle_exists(any_store, key)
        # a cached, verified copy needs nothing from the store
        assert fetch_bundle(any_store, key, expected_digest=digest,
                            cache_root=tmp_path / "cache") == local


def test_interrupted_upload_leaves_nothing_visible(engine: Engine, s3_server: LoopbackS3,
                                                   bucket_store: ObjectStore,
                                                   tmp_path: Path) -> None:
    version_id, fingerprint = stand_in_version(tmp_path / "local")
    local = tmp_path / "local" / bundle_key(track=DEFAULT_TRACK, version_id=version_id)
    key = bundle_key(track=DEFAULT_TRACK, version_id=version_id)

    def connection_drops(path: str, body: bytes) -> bytes:
        raise ConnectionAbortedError(f"{path}: cut off after {len(body) // 2} bytes")

    s3_server.damage = connection_drops  # every try of the upload fails, after its body is sent
    try:
        with pytest.raises(StorageUnavailable, match="cannot write"):
            commit_bundle(bucket_store, local, key)
    finally:
        s3_server.damage = None
    assert bucket_store.list("models") == [] and not bundle_exists(bucket_store, key)
    with write_session(engine) as session, pytest.raises(IntegrityFailure,
                                                         match="never committed"):
        store.register_version(session, track=DEFAULT_TRACK, version_id=version_id,
                               fingerprint=fingerprint, artefacts_root=bucket_store, actor="t")
    commit_bundle(bucket_store, local, key)  # the next run completes
    with write_session(engine) as session:
        _, created = store.register_version(
            session, track=DEFAULT_TRACK, version_id=version_id, fingerprint=fingerprint,
            artefacts_root=bucket_store, actor="test")
    assert created


def bucket_store_options(bucket: ObjectStore) -> dict[str, str]:
    return {**S3_TEST_OPTIONS, "endpoint": bucket._store.config["endpoint"]}


@pytest.fixture(scope="module")
def checking_endpoint() -> Iterator[str]:
    """A second moto S3 server, in its own process, that checks every request's credentials
    (it knows none, so any access key is wrong)."""
    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"}
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                               str(port)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_until_answering(server, f"http://127.0.0.1:{port}/", any_status=True)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("failure", ["unreachable", "wrong bucket", "wrong credentials"])
def test_store_failure_names_the_url_and_registers_nothing(
        engine: Engine, s3_endpoint: str, tmp_path: Path, failure: str,
        request: pytest.FixtureRequest) -> None:
    endpoint = {"unreachable": lambda: f"http://127.0.0.1:{free_port()}",
                "wrong bucket": lambda: s3_endpoint,
                "wrong credentials": lambda: request.getfixturevalue("checking_endpoint")
                }[failure]()
    broken = ObjectStore("s3://podium-missing/artefacts", timeout_seconds=5,
                         options={**S3_TEST_OPTIONS, "endpoint": endpoint})
    version_id, fingerprint = stand_in_version(tmp_path / "local")
    with pytest.raises(StorageUnavailable, match=r"^artefact store s3://podium-missing/artefacts "
                       "cannot read") as info:
        with write_session(engine) as session:
            store.register_version(session, track=DEFAULT_TRACK, version_id=version_id,
                                   fingerprint=fingerprint, artefacts_root=broken, actor="t")
    assert info.value.code == "storage_unavailable" and info.value.status == 503
    assert S3_TEST_OPTIONS["secret_access_key"] not in info.value.detail
    with read_session(engine) as session:
        assert store.list_versions(session) == []


def test_predictions_in_the_bucket_are_plain_parquet(bucket_store: ObjectStore,
                                                     s3_endpoint: str) -> None:
    book = PredictionStore(bucket_store, "shadow/predictions")
    days = [dt.date(2025, 7, 1), dt.date(2025, 7, 2)]
    scores = np.array([[0.5, -0.5], [0.25, -0.25]], dtype=np.float32)
    key = book.write(DEFAULT_TRACK, "v1-linear-20250630-3fa2c1de", days=days,
                     assets=["AAA", "BBB"], scores=scores, weights=np.sign(scores))
    assert book.predicted_days(DEFAULT_TRACK, "v1-linear-20250630-3fa2c1de") == days
    read_scores, _ = book.read(DEFAULT_TRACK, "v1-linear-20250630-3fa2c1de", days[1:], ["BBB"])
    assert read_scores.tolist() == [[-0.25]]
    bucket, prefix = bucket_store.url.removeprefix("s3://").split("/", 1)
    s3 = pafs.S3FileSystem(endpoint_override=s3_endpoint, scheme="http", region="us-east-1",
                           access_key=S3_TEST_OPTIONS["access_key_id"],
                           secret_key=S3_TEST_OPTIONS["secret_access_key"])
    frame = pd.read_parquet(f"{bucket}/{prefix}/{key}", filesystem=s3)  # no Podium involved
    assert list(frame.columns) == ["day", "asset", "score", "weight"] and len(frame) == 4


def test_an_s3_root_keeps_local_files_local_and_hides_the_secret(tmp_path: Path) -> None:
    config = parse_config(
        "artefacts_root: s3://podium-artefacts/prod\n"
        "object_store: {access_key_id: podium, secret_access_key: hunter2-secret,\n"
        "               region: eu-west-1, local_dir: work}\n",
        source=tmp_path / "podium.yaml", environ={})
    assert config.object_store.url == "s3://podium-artefacts/prod"
    assert config.artefacts_root == tmp_path / "work" == config.object_store.local_dir
    assert "hunter2-secret" not in repr(config) + config.model_dump_json()
    assert artefact_store(config).url == "s3://podium-artefacts/prod"
    from_env = parse_config("{}", source=tmp_path / "podium.yaml",
                            environ={"PODIUM_ARTEFACTS_ROOT": "s3://podium-artefacts/x"})
    assert from_env.object_store.url == "s3://podium-artefacts/x"


def test_an_empty_secret_leaves_the_messages_readable(tmp_path: Path) -> None:
    """A ``secret_access_key`` left empty (a variable not set) is no secret to mask: masking ""
    would put *** between every two characters of every message."""
    config = parse_config(
        "artefacts_root: s3://podium-missing/artefacts\n"
        f"object_store: {{endpoint: 'http://127.0.0.1:{free_port()}', region: us-east-1,\n"
        "               access_key_id: podium, secret_access_key: ''}\n",
        source=tmp_path / "podium.yaml", environ={})
    with pytest.raises(StorageUnavailable) as info:
        artefact_store(config).get("models/x.tar")
    assert info.value.detail.startswith(
        "artefact store s3://podium-missing/artefacts cannot read models/x.tar: ")
    assert "***" not in info.value.detail


def test_a_sealed_local_bundle_is_one_archive_in_the_bucket(bucket_store: ObjectStore,
                                                            tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    (bundle / "tensorboard").mkdir(parents=True)
    (bundle / "tensorboard" / "events.out").write_bytes(b"\0" * 10)
    (bundle / "summary.yaml").write_text("best: {}\n")
    write_sha256sums(bundle)
    key = "models/t/v1-linear-20250630-3fa2c1de"
    commit_bundle(bucket_store, bundle, key)
    assert [item.key for item in bucket_store.list("models")] == [archive_key(key)]
    archive = tmp_path / "bundle.tar"  # a plain tar: `tar -x` unpacks it
    archive.write_bytes(bucket_store.get(archive_key(key)))
    with tarfile.open(archive) as tar:
        assert tar.getnames() == ["SHA256SUMS", "summary.yaml", "tensorboard/events.out"]
        tar.extractall(tmp_path / "unpacked", filter="data")
    assert (tmp_path / "unpacked" / "summary.yaml").read_text() == "best: {}\n"
    assert read_files(archive.read_bytes(), name=key)["SHA256SUMS"] == (
        bundle / "SHA256SUMS").read_bytes()


def _flip_a_byte(data: bytes) -> bytes:
    return data[:1] + bytes([data[1] ^ 0x01]) + data[2:]


def test_a_committed_bundle_is_never_written_over(any_store, tmp_path: Path) -> None:
    version_id, _ = stand_in_version(any_store)
    key = bundle_key(track=DEFAULT_TRACK, version_id=version_id)
    digest = verify_stored_bundle(any_store, key)
    other = Path(write_stand_in_bundle(tmp_path / "other", version_id))
    (other / "metadata.json").write_text('{"version_id": "another build"}\n')
    write_sha256sums(other)
    with pytest.raises(OSError):  # on disk the rename refuses; in a bucket, the archive is there
        commit_bundle(any_store, other, key)
    assert verify_stored_bundle(any_store, key, expected_digest=digest) == digest
    assert b"another build" not in bundle_file(any_store, key, "metadata.json")
    any_store.put_new("notes/first.txt", b"first")
    with pytest.raises(FileExistsError):
        any_store.put_new("notes/first.txt", b"second")
    assert any_store.get("notes/first.txt") == b"first"


def test_a_file_changed_after_sealing_is_not_committed(bucket_store: ObjectStore,
                                                       tmp_path: Path) -> None:
    version_id, _ = stand_in_version(tmp_path / "local")
    key = bundle_key(track=DEFAULT_TRACK, version_id=version_id)
    local = tmp_path / "local" / key
    (local / "metadata.json").write_text("{}\n")
    with pytest.raises(IntegrityFailure, match="metadata.json: changed since its bundle was "
                       "sealed"):
        commit_bundle(bucket_store, local, key)
    assert bucket_store.list("models") == []


def test_an_upload_damaged_on_its_way_is_refused(engine: Engine, s3_server: LoopbackS3,
                                                  bucket_store: ObjectStore,
                                                  tmp_path: Path) -> None:
    version_id, fingerprint = stand_in_version(tmp_path / "local")
    key = bundle_key(track=DEFAULT_TRACK, version_id=version_id)
    local = tmp_path / "local" / key
    s3_server.damage = lambda path, body: _flip_a_byte(body)
    try:  # the client sends the right bytes; the server stores others, and says so in its ETag
        with pytest.raises(IntegrityFailure, match=r"\.tar: damaged on upload"):
            commit_bundle(bucket_store, local, key)
    finally:
        s3_server.damage = None
    assert bucket_store.list("models") == []  # nothing committed, nothing left
    commit_bundle(bucket_store, local, key)
    with write_session(engine) as session:
        _, created = store.register_version(
            session, track=DEFAULT_TRACK, version_id=version_id, fingerprint=fingerprint,
            artefacts_root=bucket_store, actor="test")
    assert created


def test_what_was_just_uploaded_is_verified_without_reading_it_back(
        engine: Engine, s3_server: LoopbackS3, bucket_store: ObjectStore,
        tmp_path: Path) -> None:
    version_id, fingerprint = stand_in_version(tmp_path / "local")
    key = bundle_key(track=DEFAULT_TRACK, version_id=version_id)
    s3_server.take()
    commit_bundle(bucket_store, tmp_path / "local" / key, key)
    assert s3_server.take() == {"PUT": 1}  # the whole bundle, in one request
    with write_session(engine) as session:  # on the proof of its commit
        version, _ = store.register_version(
            session, track=DEFAULT_TRACK, version_id=version_id, fingerprint=fingerprint,
            artefacts_root=bucket_store, actor="test")
        registered = version.bundle_digest
    assert s3_server.take() == {}
    digest = verify_stored_bundle(bucket_store, key)
    assert digest == registered == hashlib.sha256(
        (tmp_path / "local" / key / "SHA256SUMS").read_bytes()).hexdigest()
    # the archive's ETag is still the MD5 of the bytes sent, whose files were checked: not read
    assert s3_server.take() == {"HEAD": 1}
    another_process = ObjectStore(bucket_store.url, options=bucket_store_options(bucket_store))
    weights = bundle_file(another_process, key, "checkpoint/weights.bin")
    tamper_with_bundle(another_process, key, "checkpoint/weights.bin", _flip_a_byte(weights))
    s3_server.take()
    with pytest.raises(IntegrityFailure, match="checksum mismatch for checkpoint/weights.bin"):
        verify_stored_bundle(bucket_store, key, expected_digest=digest)
    assert s3_server.take() == {"HEAD": 1, "GET": 1}  # read: its ETag had changed
