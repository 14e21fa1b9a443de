"""A team's own panel end to end, through the CLIs a user runs: the pipeline lands days of a
Parquet panel, the zoo trains built-in specs on it, `shadow run` scores the days that land,
and the leaderboard ranks the versions; bad data stops the zoo with exit 2."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from sqlmodel import select

from registry.db import make_engine, read_session
from registry.models import ModelVersion, ShadowScore
from tests.conftest import REPO
from tests.e2e.conftest import BIN
from tests.shadow.conftest import OWN_DATA, PANEL_LANDED, land_panel

pytestmark = pytest.mark.slow
SPECS = ("linear-5d", "revision")


def own_data_config(tmp_path: Path) -> Path:
    """examples/own-data/podium.yaml, its panel under ``tmp_path``, two of its specs."""
    config = yaml.safe_load(OWN_DATA.read_text())
    config["data"]["path"] = str(tmp_path / "panel")
    config["model_specs"] = [s for s in config["model_specs"] if s["name"] in SPECS]
    path = tmp_path / "podium.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def cli(tool: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / tool), *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=600)


def test_own_panel_trained_landed_scored_and_ranked(db_url: str, tmp_path: Path) -> None:
    config = own_data_config(tmp_path)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PODIUM_")},
           "PODIUM_DATABASE_URL": db_url, "PODIUM_ARTEFACTS_ROOT": str(tmp_path / "artefacts"),
           "PODIUM_CONFIG": str(config), "WANDB_MODE": "disabled", "COLUMNS": "200"}
    land_panel(tmp_path / "panel", PANEL_LANDED)
    assert cli("registry", "migrate", env=env).returncode == 0
    zoo = cli("zoo", "--all-active", env=env)
    assert zoo.returncode == 0, zoo.stdout + zoo.stderr
    assert zoo.stdout.count("registered as a challenger") >= 2
    again = cli("zoo", "--all-active", env=env)  # same data, same specs: same versions
    assert again.returncode == 0 and again.stdout.count("already registered") >= 2

    land_panel(tmp_path / "panel", PANEL_LANDED + 25)
    run = cli("shadow", "run", env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "shadow run on own-equities" in run.stdout and "assets entered" in run.stdout
    board = cli("registry", "leaderboard", env=env)
    assert board.returncode == 0, board.stderr

    engine = make_engine(db_url)
    try:
        with read_session(engine) as session:
            versions = session.exec(select(ModelVersion)).all()
            days = session.exec(select(ShadowScore.version_id, ShadowScore.day)).all()
    finally:
        engine.dispose()
    assert {v.spec_name for v in versions} == set(SPECS)
    assert all(v.track == "own-equities" for v in versions)
    for version in versions:
        assert version.version_id in board.stdout
        assert sum(1 for vid, _ in days if vid == version.version_id) == 24


def test_bad_panel_stops_the_zoo_with_exit_2_and_registers_nothing(db_url: str,
                                                                    tmp_path: Path) -> None:
    config = own_data_config(tmp_path)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PODIUM_")},
           "PODIUM_DATABASE_URL": db_url, "PODIUM_ARTEFACTS_ROOT": str(tmp_path / "artefacts"),
           "PODIUM_CONFIG": str(config), "WANDB_MODE": "disabled"}
    land_panel(tmp_path / "panel", 200)
    duplicate = next((tmp_path / "panel").glob("date=*/part-0.parquet"))
    (duplicate.parent / "part-1.parquet").write_bytes(duplicate.read_bytes())
    assert cli("registry", "migrate", env=env).returncode == 0
    zoo = cli("zoo", "--all-active", env=env)
    assert zoo.returncode == 2
    assert f"{duplicate.parent.name}/part-1.parquet" in zoo.stderr
    assert "duplicate (date, asset)" in zoo.stderr and "Traceback" not in zoo.stderr
    engine = make_engine(db_url)
    try:
        with read_session(engine) as session:
            assert session.exec(select(ModelVersion)).all() == []
    finally:
        engine.dispose()
