"""`shadow feed --track`: lands days of the named synthetic track's own market."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from registry.config import load_config
from tests.conftest import REPO
from trainer.dataset import open_feed

CONFIG = """
artefacts_root: artefacts
track: home
market: {name: home-market, n_assets: 20, n_days: 200, initial_days: 100}
tracks:
  - name: small-desk
    market: {name: small-market, seed: 3, n_assets: 12, n_days: 150, initial_days: 90}
"""


def feed(config: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODIUM_")}
    shadow = str(Path(sys.executable).parent / "shadow")
    return subprocess.run([shadow, "feed", "--config", str(config), *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_feed_lands_the_named_tracks_market_only(tmp_path: Path) -> None:
    path = tmp_path / "podium.yaml"
    path.write_text(CONFIG)
    landed = feed(path, "--track", "small-desk", "--days", "2")
    assert landed.returncode == 0, landed.stderr
    assert "(92 of 150 days have landed)" in landed.stdout
    config = load_config(path, environ={})
    desk = config.for_track("small-desk")
    assert len(open_feed(desk.datasets_root, desk.market).landed_days()) == 92
    assert not (tmp_path / "artefacts" / "datasets" / "home-market").exists()
    unknown = feed(path, "--track", "nope")
    assert unknown.returncode == 2
    assert "track 'nope' is not configured (tracks: home, small-desk)" in unknown.stderr
