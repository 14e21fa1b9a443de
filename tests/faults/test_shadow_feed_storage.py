"""``shadow feed`` on an artefacts root that cannot be written: one clear storage error."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.registry.test_cli import BIN

pytestmark = pytest.mark.slow
READ_ONLY = os.strerror(30)  # "Read-only file system"


def _feed(root: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODIUM_")}
    env.update(PODIUM_ARTEFACTS_ROOT=str(root), PODIUM_DATABASE_URL=f"sqlite:///{tmp_path}/p.db",
               WANDB_MODE="disabled")
    return subprocess.run([str(BIN / "shadow"), "feed", "--days", "1", "--config",
                           str(REPO / "examples" / "tiny.yaml")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # no database in this one
def test_shadow_feed_on_a_read_only_root_is_a_storage_error(db_url, tmp_path,
                                                             small_filesystem) -> None:
    root = tmp_path / "artefacts"
    filesystem = small_filesystem(root, "64m")
    first = _feed(root, tmp_path)
    assert first.returncode == 0, first.stderr
    filesystem.read_only()
    refused = _feed(root, tmp_path)
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr.startswith(f"error: cannot land market days under {root}")
    assert READ_ONLY in refused.stderr
    assert "internal error" not in refused.stderr and "Traceback" not in refused.stderr
    filesystem.read_write()
    again = _feed(root, tmp_path)
    assert again.returncode == 0 and "landed 1 day(s)" in again.stdout, again.stderr
