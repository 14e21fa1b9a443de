"""Your data and your models, end to end on a real server, as a team would run Podium.

The team's pipeline lands a Parquet panel day by day; the zoo trains built-in specs on it; a
model trained outside Podium (the NumPy example) registers over REST and submits its scores for
each next day before that day lands; ``shadow run`` settles both kinds; the leaderboard and the
gate rank them; the gate crowns the external model on its shadow record (no force), and a
consumer resolves and loads the new champion with its own loader. Bad data, or a landed day
rewritten after a shadow run used it, stops the zoo with exit 2 and registers nothing.

On SQLite the zoo's trainers run. On PostgreSQL the zoo finds the same specs' bundles already
sealed under the artefacts root (trained once per run on the same panel), as a registration cut
short leaves them: it verifies and registers them without training them again.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
import yaml
from sqlalchemy import Engine
from sqlmodel import select

from registry.client import Client, load_champion
from registry.db import read_session
from registry.errors import ConfigError
from registry.history import check_history
from registry.landing import landed_days, track_source
from registry.models import AuditEntry, ModelVersion
from registry.testing import RegistryServer
from tests.conftest import JAX_CACHE_ENV, REPO
from tests.e2e.conftest import BIN
from tests.shadow.conftest import (
    OWN_DATA,
    PANEL_ASSETS,
    PANEL_DAYS,
    PANEL_LANDED,
    panel_config,
)

pytestmark = pytest.mark.slow
SPECS = ("linear-5d", "revision")
TRACK = "own-equities"
DAYS = 30  # days that land while the external model submits
EXAMPLE = OWN_DATA.parent / "external_model.py"
SLOW = 120.0  # seconds a REST call may take: the gate's first use imports pandas and scipy


def example_module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, OWN_DATA.parent / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def own_data_config(tmp_path: Path, **sections: dict) -> dict:
    """examples/own-data/podium.yaml, its panel under ``tmp_path``, two of its specs."""
    config = yaml.safe_load(OWN_DATA.read_text())
    config["data"]["path"] = str(tmp_path / "panel")
    config["model_specs"] = [s for s in config["model_specs"] if s["name"] in SPECS]
    return {**config, **sections}


def cli(tool: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / tool), *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=600)


def test_own_panel_and_own_model_compete_and_the_gate_crowns_the_better(
        engine: Engine, db_url: str, artefacts_root: Path, tmp_path: Path, tokens,
        landed_panel, request: pytest.FixtureRequest) -> None:
    panel_dir = tmp_path / "panel"
    landed_panel(panel_dir, PANEL_LANDED)
    trained = engine.dialect.name != "sqlite"
    if trained:  # bundles sealed on this panel, not yet registered here
        _, template, template_versions = request.getfixturevalue("panel_specs_trained")
        shutil.copytree(template / "models", artefacts_root / "models")
    settings = own_data_config(
        tmp_path, server={"public_reads": False},
        # scored by `shadow run` below, not by the server's job; a liquid market's cost
        shadow={"in_serve": False, "portfolio": {"cost_bps": 2.0}},
        # the days landed here, and a Deflated Sharpe bar those days can clear: the default
        # (0.95 given every version tried) asks for months of evidence
        gate={"min_days": 20, "horizon_days": 60, "min_dsr": 0.5})
    with RegistryServer(database_url=db_url, artefacts_root=artefacts_root, workdir=tmp_path,
                        config=settings) as server:
        env = {**server.env, "PODIUM_URL": server.url, "COLUMNS": "200",
               # the worker's warm JAX cache for the zoo's trainers (tests/conftest.py)
               JAX_CACHE_ENV: os.environ[JAX_CACHE_ENV]}
        zoo = cli("zoo", "--all-active", env=env)
        assert zoo.returncode == 0, zoo.stdout + zoo.stderr
        if trained:
            assert len(template_versions) == len(SPECS)
            for version_id, _, spec in template_versions:
                assert re.search(rf"^registered {spec} → {version_id} \(.*\) registered a "
                                 "sealed bundle left by an interrupted run$", zoo.stdout,
                                 re.MULTILINE), zoo.stdout
            assert not any((artefacts_root / "runs").glob("*/trainer.log"))  # none trained
        else:
            assert zoo.stdout.count("registered as a challenger") >= len(SPECS)
        again = cli("zoo", "--all-active", env=env)  # same data, same specs: same versions
        assert again.returncode == 0 and again.stdout.count("already registered") >= len(SPECS)

        # The external model registers, then submits each next day before the pipeline lands it.
        model = tmp_path / "model.npz"
        pipeline = example_module("write_panel")
        rows = pipeline.simulate(PANEL_ASSETS, PANEL_DAYS, dt.date(2021, 1, 4), 5)
        with subprocess.Popen(
                [sys.executable, str(EXAMPLE), "--data", str(panel_dir), "--track", TRACK,
                 "--extra", "analyst_revision", "--days", str(DAYS), "--poll", "0.05",
                 "--timeout", "120", "--out", str(model)],
                env={**env, "PODIUM_TOKEN": tokens["promote"]}, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True, cwd=REPO) as external:
            try:
                registered = external.stdout.readline()
                assert registered.startswith("registered "), registered + external.stderr.read()
                version_id = registered.split()[1]
                for k in range(1, DAYS + 1):
                    submitted = external.stdout.readline()
                    assert "scores submitted" in submitted, submitted + external.stderr.read()
                    assert len(pipeline.land_partitions(rows, panel_dir, PANEL_LANDED + k)) == 1
                assert external.wait(timeout=120) == 0, external.stderr.read()
            finally:
                external.kill()
        promoter = {**env, "PODIUM_TOKEN": tokens["promote"]}
        listed = cli("registry", "external", "submissions", version_id, env=promoter)
        assert listed.returncode == 0, listed.stderr
        assert f"{DAYS} day(s) submitted" in listed.stdout
        late = tmp_path / "late.csv"  # no look-ahead: a day before the last landed is refused
        late.write_text("asset,score\nTK00001,0.5\nTK00002,-0.5\n")
        last = sorted(rows["date"].unique())[PANEL_LANDED + DAYS - 1]
        saturday = last - dt.timedelta(days=(last.weekday() - 5) % 7)  # never lands
        refused = cli("registry", "external", "submit", version_id, "--day", str(saturday),
                      str(late), env=promoter)
        assert refused.returncode == 1
        assert refused.stderr.startswith(f"error: {saturday} is in the past")

        run = cli("shadow", "run", env=env)
        assert run.returncode == 0, run.stdout + run.stderr
        assert f"shadow run on {TRACK}" in run.stdout and "assets entered" in run.stdout
        with Client(server.url, tokens["read"], timeout=SLOW) as reader:
            board = reader._call("GET", f"/tracks/{TRACK}/leaderboard")
        rows_by_id = {row["version_id"]: row for row in board["rows"]}
        builtin = sorted(set(rows_by_id) - {version_id})
        assert len(builtin) == len(SPECS)
        assert {v: row["metrics"]["days"] for v, row in rows_by_id.items()} == {
            v: DAYS - 1 for v in [version_id, *builtin]}
        assert board["winner"] == version_id, json.dumps(board["rows"], indent=1)[:4000]
        assert board["rows"][0]["version_id"] == version_id
        assert rows_by_id[version_id]["verdict"] == "PASS"
        assert rows_by_id[version_id]["report"]["dsr"] >= 0.5
        listing = cli("registry", "leaderboard", env=env)
        assert listing.returncode == 0, listing.stderr
        assert all(v in listing.stdout for v in rows_by_id)

        # The gate, not force, crowns it: the first champion of the track, on its own record.
        with Client(server.url, tokens["promote"], timeout=SLOW) as promoter_client:
            promoted = promoter_client.promote(version_id,
                                               "the external model, on its shadow record")
        assert promoted["version"]["kind"] == "external"
        assert promoted["transition"]["to_state"] == "champion"
        with read_session(engine) as session:
            entry = session.exec(select(AuditEntry).where(
                AuditEntry.version_id == version_id, AuditEntry.action == "promote")).one()
            versions = session.exec(select(ModelVersion)).all()
        assert entry.forced is False and entry.actor == "promote-bot"
        assert {v.spec_name for v in versions if v.kind != "external"} == set(SPECS)
        assert all(v.track == TRACK for v in versions)

        # A consumer resolves the new champion and loads it with its own loader.
        with Client(server.url, tokens["read"], timeout=SLOW) as reader:
            champion = reader.champion(TRACK)
        assert (champion["version_id"], champion["kind"]) == (version_id, "external")
        assert champion["provenance"]["uri"] == model.resolve().as_uri()
        assert champion["provenance"]["metadata"]["signals"][-1] == "analyst_revision"

        class Ridge:
            def __init__(self, meta: dict) -> None:
                self.coefficients = np.load(Path(meta["provenance"]["uri"][len("file://"):])
                                            )["coefficients"]

            def predict(self, signals: np.ndarray) -> np.ndarray:
                return signals @ self.coefficients

        with load_champion(TRACK, url=server.url, token=tokens["read"],
                           external_loader=Ridge) as predictor:
            assert predictor.version_id == version_id
            assert predictor.predict(np.eye(4)).tolist() == (
                predictor.predictor.coefficients.tolist())
        with pytest.raises(ConfigError, match="pass external_loader= to load it") as err:
            load_champion(TRACK, url=server.url, token=tokens["read"])
        assert err.value.code == "external_loader_required"

        register = ["external", "register", "--track", TRACK, "--label", "vendor-x",
                    "--train-cutoff", str(last), "--uri", "s3://vendor/x.onnx",
                    "--metadata", '{"vendor": "x"}']
        first, repeated = cli("registry", *register, env=promoter), cli(
            "registry", *register, env=promoter)
        assert first.returncode == repeated.returncode == 0, first.stderr
        assert first.stdout == repeated.stdout and first.stdout.startswith(
            f"vendor-x-{last:%Y%m%d}-")
        bad = cli("registry", *register[:-2], "--metadata", "{not json", env=promoter)
        assert bad.returncode == 2
        assert "Invalid value for --metadata: must be a JSON object" in bad.stderr


def zoo_env(db_url: str, tmp_path: Path) -> dict[str, str]:
    """The environment of a user running the zoo on the example's config and their panel."""
    config = tmp_path / "podium.yaml"
    config.write_text(yaml.safe_dump(own_data_config(tmp_path)))
    return {**{k: v for k, v in os.environ.items() if not k.startswith("PODIUM_")},
            "PODIUM_DATABASE_URL": db_url, "PODIUM_ARTEFACTS_ROOT": str(tmp_path / "artefacts"),
            "PODIUM_CONFIG": str(config), "WANDB_MODE": "disabled"}


def assert_nothing_registered(engine: Engine) -> None:
    with read_session(engine) as session:
        assert session.exec(select(ModelVersion)).all() == []


def test_bad_panel_stops_the_zoo_with_exit_2_and_registers_nothing(
        engine: Engine, db_url: str, tmp_path: Path, landed_panel) -> None:
    env = zoo_env(db_url, tmp_path)
    landed_panel(tmp_path / "panel", 200)
    duplicate = next((tmp_path / "panel").glob("date=*/part-0.parquet"))
    (duplicate.parent / "part-1.parquet").write_bytes(duplicate.read_bytes())
    zoo = cli("zoo", "--all-active", env=env)
    assert zoo.returncode == 2
    assert f"{duplicate.parent.name}/part-1.parquet" in zoo.stderr
    assert "duplicate (date, asset)" in zoo.stderr and "Traceback" not in zoo.stderr
    assert_nothing_registered(engine)


def test_a_rewritten_day_in_the_training_window_stops_the_zoo(
        engine: Engine, db_url: str, tmp_path: Path, landed_panel) -> None:
    env = zoo_env(db_url, tmp_path)
    landed_panel(tmp_path / "panel", 200)
    config = panel_config(db_url, tmp_path / "artefacts", tmp_path / "panel")
    landed = landed_days(config)
    # the digests a shadow run records of the days it reads (here: all of them)
    check_history(engine, track=TRACK, digests=track_source(config).digests())
    rewritten = landed[150]
    partition = tmp_path / "panel" / f"date={rewritten.isoformat()}" / "part-0.parquet"
    rows = pd.read_parquet(partition)
    rows.assign(ret=rows["ret"] * 1.01).to_parquet(partition, index=False)
    zoo = cli("zoo", "--all-active", env=env)
    assert zoo.returncode == 2, zoo.stdout + zoo.stderr
    assert f"the data of {rewritten.isoformat()} changed after it was used" in zoo.stderr
    assert "Traceback" not in zoo.stderr
    assert_nothing_registered(engine)
