"""``registry gc``: what goes and what stays, on a local root and in a bucket."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine

from registry import promotion, store
from registry.config import parse_config
from registry.db import read_session, write_session
from registry.errors import IntegrityFailure
from registry.integrity import bundle_exists, bundle_key, verify_version
from registry.retention import apply_gc, plan_gc
from registry.storage import ObjectStore
from registry.testing import DEFAULT_TRACK, register_stand_in, stand_in_version
from tests.conftest import S3_TEST_OPTIONS

BIN = Path(sys.executable).parent


def _config_file(tmp_path: Path, db_url: str, artefacts) -> Path:
    data: dict = {"database": {"url": db_url},
                  "retention": {"retired_days": 0, "staging_hours": 0}}
    if isinstance(artefacts, ObjectStore):
        data["artefacts_root"] = artefacts.url
        data["object_store"] = {**S3_TEST_OPTIONS,
                                "endpoint": artefacts._store.config["endpoint"],
                                "local_dir": str(tmp_path / "local")}
    else:
        data["artefacts_root"] = str(artefacts.root)
    path = tmp_path / "podium.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_gc_removes_only_what_nothing_needs(engine: Engine, db_url: str, any_store,
                                            tmp_path: Path) -> None:
    path = _config_file(tmp_path, db_url, any_store)
    config = parse_config(path.read_text(), source=path, environ={})
    first = register_stand_in(engine, any_store, "v1-linear", champion=True)
    second = register_stand_in(engine, any_store, "v2-mlp")
    with write_session(engine) as session:
        promotion.promote_version(session, version_id=second, actor="t", reason="better",
                                  gate=None, force=True, artefacts_root=any_store)
    dropped = register_stand_in(engine, any_store, "v3-gru")
    with write_session(engine) as session:
        store.retire_version(session, version_id=dropped, actor="t", reason="worse")
    orphan, _ = stand_in_version(any_store, "v4-orphan")
    any_store.put("staging/v5-lost-20250630-00000000-abcd/metadata.json", b"{}")

    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
    plan = plan_gc(config, engine, now=later)
    assert sorted((item.kind, item.location) for item in plan.items) == [
        ("orphaned", bundle_key(track=DEFAULT_TRACK, version_id=orphan)),
        ("retired", bundle_key(track=DEFAULT_TRACK, version_id=dropped)),
        ("staging", "staging/v5-lost-20250630-00000000-abcd")]
    assert plan.kept == {first: f"a rollback of {DEFAULT_TRACK} would restore it"}
    assert bundle_exists(any_store, bundle_key(track=DEFAULT_TRACK, version_id=dropped))  # dry

    assert apply_gc(config, engine, plan) == plan.size > 0
    for item in plan.items:
        assert any_store.list(item.location) == []
        assert not bundle_exists(any_store, item.location)
    with read_session(engine) as session:
        gone = store.get_version(session, dropped)
        with pytest.raises(IntegrityFailure, match=f"bundle of {dropped} removed by gc on "
                           f"{dt.date.today().year}") as info:
            verify_version(any_store, gone)
        assert info.value.code == "bundle_removed"
        for kept in (first, second):  # the champion and the rollback target are intact
            verify_version(any_store, store.get_version(session, kept))
    assert plan_gc(config, engine, now=later).items == []


def test_gc_cli_is_a_dry_run_by_default(engine: Engine, db_url: str, artefacts_root: Path,
                                        tmp_path: Path) -> None:
    from registry.storage import LocalStore

    path = _config_file(tmp_path, db_url, LocalStore(artefacts_root))
    orphan, _ = stand_in_version(artefacts_root, "v4-orphan")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODIUM_")}
    dry = subprocess.run([str(BIN / "registry"), "gc", "--config", str(path)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert f"would remove orphaned models/{DEFAULT_TRACK}/{orphan}" in dry.stdout
    assert "--apply removes them" in dry.stdout
    assert (artefacts_root / "models" / DEFAULT_TRACK / orphan).is_dir()
    applied = subprocess.run([str(BIN / "registry"), "gc", "--apply", "--json", "--config",
                              str(path)], env=env, capture_output=True, text=True, timeout=120)
    assert applied.returncode == 0, applied.stderr
    report = json.loads(applied.stdout)
    assert report["dry_run"] is False and report["freed"] == report["bytes"] > 0
    assert not (artefacts_root / "models" / DEFAULT_TRACK / orphan).exists()
