"""A full or read-only artefacts filesystem (a real tmpfs, mounted for the test).

Running as root, ``chmod`` stops nothing, so the faults are real filesystems: a tmpfs too small
for a bundle, a tmpfs filled to the last byte, a tmpfs remounted read-only. The trainer and the
zoo fail with a clear error, leave no bundle (whole or half) at the final path, register
nothing, and the next run completes once there is room again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from registry import store
from registry.db import read_session
from registry.errors import PodiumError
from registry.integrity import bundle_dir
from tests.conftest import REPO
from zoo.runner import resolve_for_data, resolved_config_json, run_spec
from zoo.runs import read_runs
from zoo.specs import active_specs

pytestmark = pytest.mark.slow
NO_SPACE = os.strerror(28)  # "No space left on device"
READ_ONLY = os.strerror(30)  # "Read-only file system"


def _registered(engine) -> dict[str, str]:
    with read_session(engine) as session:
        return {v.version_id: v.state for v in store.list_versions(session)}


def _trainer(config_file: Path, out: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled", "WANDB_DIR": str(tmp_path / "wandb")}
    return subprocess.run([sys.executable, "-m", "trainer", "--config-file", str(config_file),
                           "--out", str(out)], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=300)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # no database in this one
@pytest.mark.parametrize("fault", ["too-small", "read-only"])
def test_the_trainer_fails_cleanly_when_its_bundle_cannot_be_written(fault, db_url, tiny,
                                                                     tmp_path,
                                                                     small_filesystem) -> None:
    config, _ = tiny
    resolved = resolve_for_data(config, active_specs(config)[0])  # the dataset: on a real disk
    config_file = tmp_path / "resolved.json"
    config_file.write_text(json.dumps(resolved_config_json(config, resolved)))
    mount = tmp_path / "models"
    filesystem = small_filesystem(mount, "40k")  # a sealed tiny bundle takes ~100 KiB
    if fault == "read-only":
        filesystem.read_only()
    out = mount / "bundle"
    result = _trainer(config_file, out, tmp_path)
    lines = result.stdout.splitlines()
    assert result.returncode == 1, result.stderr[-3000:]
    assert len(lines) == 1, result.stdout
    answer = json.loads(lines[0])
    assert answer["status"] == "error"
    assert (NO_SPACE if fault == "too-small" else READ_ONLY) in answer["message"]
    assert not out.exists()
    assert sorted(p.name for p in mount.iterdir()) == []  # no staging left behind either
    filesystem.unmount()
    again = _trainer(config_file, out, tmp_path)  # the same command, with room: it works
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout)["status"] == "ok" and (out / "SHA256SUMS").is_file()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the database is a bystander
@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_the_zoo_fails_cleanly_on_a_full_or_read_only_artefacts_root(fault, db_url, tiny,
                                                                     small_filesystem) -> None:
    config, engine = tiny
    spec = active_specs(config)[0]
    filesystem = small_filesystem(config.artefacts_root, "32m")
    resolve_for_data(config, spec)  # the market has landed before the disk fills up
    filler = filesystem.fill() if fault == "full" else None
    if fault == "read-only":
        filesystem.read_only()
    record = run_spec(config, spec, engine=engine)
    assert record.status == "failed"
    assert record.message.startswith(NO_SPACE if fault == "full" else READ_ONLY), record.message
    assert str(config.artefacts_root) in record.message
    assert _registered(engine) == {}
    final = bundle_dir(config.artefacts_root, track=config.track, version_id=record.version_id)
    assert not final.exists()
    assert not list(config.models_root.rglob("SHA256SUMS")) if config.models_root.exists() \
        else True
    if filler is not None:
        filler.unlink()
    else:
        filesystem.read_write()
    again = run_spec(config, spec, engine=engine)
    assert again.status == "registered", again.message
    assert list(_registered(engine)) == [again.version_id]
    assert (final / "SHA256SUMS").is_file()
    assert list(read_runs(config.artefacts_root)["status"])[-1] == "registered"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_dataset_that_cannot_be_created_is_a_clear_error(db_url, tiny,
                                                           small_filesystem) -> None:
    """Before any spec runs, the zoo creates the market: a full disk then fails every spec
    with one clear error (exit 1 from the CLI), leaves no dataset that looks complete, and the
    next run creates it."""
    config, engine = tiny
    spec = active_specs(config)[0]
    filesystem = small_filesystem(config.artefacts_root, "256k")  # far too small for the market
    with pytest.raises(PodiumError, match=f"cannot create the market dataset under .*{NO_SPACE}"):
        run_spec(config, spec, engine=engine)
    assert not list(config.datasets_root.rglob("metadata.json"))  # nothing to reuse by mistake
    assert _registered(engine) == {}
    filesystem.unmount()
    again = run_spec(config, spec, engine=engine)
    assert again.status == "registered", again.message
