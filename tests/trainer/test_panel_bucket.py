"""A panel in a bucket (moto's S3 server on loopback): the same three layouts, the same days and
digests as on disk, a rewritten day refused by the history check, and errors that name the URL
(never a credential) when the bucket does not answer or the prefix holds nothing."""

from __future__ import annotations

import io
import json
import socket
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine

from registry.config import ObjectStoreConfig, parse_config
from registry.errors import HistoryChanged
from registry.history import check_history
from registry.storage import ObjectStore, StorageUnavailable
from tests.conftest import S3_TEST_OPTIONS
from tests.shadow.conftest import panel_config, upload_panel
from tests.trainer.test_panel import DAYS, long_frame, panel_of, write_partitions
from trainer.panel import PanelError, landed_days, read_panel
from trainer.sources import PanelSource
from zoo.runner import resolve_for_data, run_spec
from zoo.specs import active_specs


def settings(endpoint: str) -> ObjectStoreConfig:
    return ObjectStoreConfig(endpoint=endpoint, region=S3_TEST_OPTIONS["region"],
                             access_key_id=S3_TEST_OPTIONS["access_key_id"],
                             secret_access_key=S3_TEST_OPTIONS["secret_access_key"])


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink)
    return sink.getvalue()


def land(bucket: ObjectStore, prefix: str, frame: pd.DataFrame) -> str:
    """``frame``'s days as ``prefix/date=…/part-0.parquet`` objects; returns the panel's URL."""
    for day, rows in frame.groupby("date"):
        bucket.put(f"{prefix}/date={day}/part-0.parquet", parquet_bytes(rows.drop(columns="date")))
    return f"{bucket.url}/{prefix}"


@pytest.mark.parametrize("layout", ["partitions", "parquet", "csv"])
def test_a_panel_in_a_bucket_reads_as_on_disk(bucket_store: ObjectStore, s3_endpoint: str,
                                              tmp_path: Path, layout: str) -> None:
    frame = long_frame()
    if layout == "partitions":
        url = land(bucket_store, "feeds/panel", frame)
        bucket_store.put("feeds/panel/_staging/date=2024-02-01/part-0.parquet", b"half")
        bucket_store.put("feeds/panel/README", b"not a day")
        path = write_partitions(tmp_path / "panel", frame)
    else:
        path = tmp_path / f"panel.{layout}"
        if layout == "parquet":
            frame.to_parquet(path)
        else:
            frame.to_csv(path, index=False)
        bucket_store.put(f"feeds/{path.name}", path.read_bytes())
        url = f"{bucket_store.url}/feeds/{path.name}"
    config, local = panel_of(url), read_panel(panel_of(path))
    stored = read_panel(config, store_settings=settings(s3_endpoint))
    assert landed_days(config, store_settings=settings(s3_endpoint)) == DAYS
    assert stored.digests == local.digests and stored.rows == local.rows
    pd.testing.assert_frame_equal(stored.returns, local.returns)
    later = read_panel(config, start=DAYS[2], store_settings=settings(s3_endpoint))
    assert later.days == DAYS[2:]


def test_the_configuration_keeps_a_panel_url_as_written(tmp_path: Path) -> None:
    config = parse_config("data: {kind: panel, name: mine, path: 's3://feeds/eq/panel'}\n"
                          "tracks: [{name: other, data: {kind: panel, name: other, "
                          "path: 'local/panel'}}]\n", source=tmp_path / "podium.yaml")
    assert config.data.path == config.trainer.panel.path == "s3://feeds/eq/panel"
    assert config.tracks[0].data.path == str(tmp_path / "local" / "panel")


def test_a_rewritten_day_in_the_bucket_is_refused(engine: Engine, bucket_store: ObjectStore,
                                                  s3_endpoint: str) -> None:
    frame = long_frame()
    source = PanelSource(panel_of(land(bucket_store, "panel", frame)), settings(s3_endpoint))
    assert check_history(engine, track="t", digests=source.digests()) == len(DAYS)
    day = DAYS[1].isoformat()
    rows = frame[frame["date"] == day].assign(ret=lambda f: f["ret"] * 1.01)
    bucket_store.put(f"panel/date={day}/part-0.parquet", parquet_bytes(rows.drop(columns="date")))
    fresh = PanelSource(source.config, settings(s3_endpoint))  # a later run reads it again
    with pytest.raises(HistoryChanged, match=f"the data of {day} changed after it was used"):
        check_history(engine, track="t", digests=fresh.digests())


def test_an_empty_prefix_or_a_missing_object_is_named(bucket_store: ObjectStore,
                                                      s3_endpoint: str) -> None:
    options = settings(s3_endpoint)
    for url in (f"{bucket_store.url}/nothing-here", f"{bucket_store.url}/none.parquet"):
        assert landed_days(panel_of(url), store_settings=options) == []
        with pytest.raises(PanelError, match=f"^{url}: "):
            read_panel(panel_of(url), store_settings=options)
    bucket_store.put("panel/date=2024-13-01/part-0.parquet", parquet_bytes(long_frame()))
    with pytest.raises(PanelError, match="date=2024-13-01: partition name is not date="):
        landed_days(panel_of(f"{bucket_store.url}/panel"), store_settings=options)
    with pytest.raises(PanelError, match="not a whole bucket"):
        read_panel(panel_of("s3://podium-panels"), store_settings=options)


def test_an_unreachable_or_missing_bucket_is_named_without_secrets(s3_endpoint: str) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    unreachable = settings(closed).model_copy(update={"timeout_seconds": 2})
    for options, url in ((unreachable, "s3://podium-down/feeds/panel"),
                         (settings(s3_endpoint), "s3://podium-no-such-bucket/feeds/panel")):
        with pytest.raises(StorageUnavailable) as err:
            landed_days(panel_of(url), store_settings=options)
        assert err.value.detail.startswith(f"panel store {url.rpartition('/')[0]} cannot list "
                                           "panel/")
        assert S3_TEST_OPTIONS["secret_access_key"] not in err.value.detail


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # about reading the panel
def test_the_zoo_trains_on_a_panel_in_the_bucket(engine: Engine, db_url: str,
                                                 bucket_store: ObjectStore, s3_endpoint: str,
                                                 tmp_path: Path, landed_panel,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The same version as on disk (the path is no part of its identity), trained by a
    trainer child that has the bucket's settings from the configuration only."""
    # 200 days hold a training window; each is uploaded, then read by every resolve and the trainer
    landed_panel(tmp_path / "panel", 200)
    local = panel_config(db_url, tmp_path / "artefacts", tmp_path / "panel")
    upload_panel(tmp_path / "panel", bucket_store, "panel")
    data = local.data.model_copy(update={"path": f"{bucket_store.url}/panel"})
    config = local.model_copy(update={
        "data": data, "trainer": local.trainer.model_copy(update={"panel": data}),
        "object_store": settings(s3_endpoint).model_copy(
            update={"local_dir": local.artefacts_root})})
    for name in ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)  # the configuration's settings, nothing else
    spec = next(s for s in active_specs(config) if s.name == "linear-5d")
    assert (resolve_for_data(config, spec, engine=engine).version_id
            == resolve_for_data(local, spec, engine=engine).version_id)
    record = run_spec(config, spec, engine=engine)
    assert record.status == "registered", record.message
    metadata = json.loads((Path(record.bundle_path) / "metadata.json").read_text())
    assert metadata["train_config"]["panel"]["path"] == f"{bucket_store.url}/panel"
