"""End to end, on a real server: a model trained outside Podium competes beside built-in ones.

Built-in versions trained on the tiny market are registered; the external example model
registers itself over REST and submits its scores for each next day before ``shadow feed``
lands it; ``shadow run`` settles both kinds; the leaderboard ranks them side by side; the
external version is promoted over REST and a consumer resolves and loads it.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from sqlalchemy import Engine

from registry import store
from registry.client import Client, load_champion
from registry.db import write_session
from registry.errors import ConfigError
from registry.ids import parse_version_id
from registry.testing import RegistryServer
from tests.e2e.conftest import BIN
from tests.shadow.conftest import trained  # noqa: F401  (the tiny built-in bundles)
from tests.zoo.conftest import TINY, tiny_config
from trainer.dataset import dataset_dir, open_feed

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "own-data" / "external_model.py"
DAYS = 6


def cli(*args: str, env: dict[str, str], tool: str = "registry") -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / tool), *args], env=env, capture_output=True, text=True,
                          timeout=300, cwd=REPO)


@pytest.fixture
def tiny_server(trained, engine: Engine, db_url: str, artefacts_root: Path,  # noqa: F811
                tmp_path: Path, tokens):
    template, versions = trained
    shutil.copytree(template, artefacts_root, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("runs", "runs.parquet"))
    config = tiny_config(db_url, artefacts_root)
    for version_id, fingerprint, spec in versions:
        with write_session(engine) as session:
            store.register_version(session, track=config.track, version_id=version_id,
                                   fingerprint=fingerprint, artefacts_root=artefacts_root,
                                   actor="zoo", spec_name=spec)
    settings = yaml.safe_load(TINY.read_text())
    settings["server"] = {"public_reads": False}
    settings["shadow"] = {**settings.get("shadow", {}), "in_serve": False}
    with RegistryServer(database_url=db_url, artefacts_root=artefacts_root, workdir=tmp_path,
                        config=settings) as server:
        server.env["PODIUM_URL"] = server.url
        yield server, config, [v[0] for v in versions]


def test_an_external_model_competes_and_is_promoted(tiny_server, tokens, tmp_path) -> None:
    server, config, builtin = tiny_server
    env = {**server.env, "PODIUM_TOKEN": tokens["promote"]}
    data = dataset_dir(config.datasets_root, config.market)
    model = tmp_path / "model.npz"

    run = subprocess.run([sys.executable, str(EXAMPLE), "--data", str(data), "--days",
                          str(DAYS), "--land", "--poll", "0.05", "--out", str(model)],
                         env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("registered ") and len(lines) == 1 + DAYS
    assert all("scores submitted" in line for line in lines[1:])
    version_id = lines[0].split()[1]

    listed = cli("external", "submissions", version_id, env=env)
    assert listed.returncode == 0, listed.stderr
    assert f"{DAYS} day(s) submitted" in listed.stdout
    as_json = cli("external", "submissions", version_id, "--json", env=env)
    assert as_json.returncode == 0, as_json.stderr
    assert len(json.loads(as_json.stdout)) == DAYS
    late = tmp_path / "late.csv"
    late.write_text("asset,score\nA00,0.5\nA01,-0.5\n")
    last = open_feed(config.datasets_root, config.market).landed_days()[-1]
    cutoff = parse_version_id(version_id).train_cutoff
    saturday = cutoff + dt.timedelta(days=(5 - cutoff.weekday()) % 7 or 7)  # never lands
    assert cutoff < saturday < last
    refused = cli("external", "submit", version_id, "--day", str(saturday), str(late), env=env)
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"error: {saturday} is in the past")

    settled = cli("run", env=env, tool="shadow")
    assert settled.returncode == 0, settled.stderr + settled.stdout
    with Client(server.url, tokens["read"]) as reader:
        board = reader._call("GET", f"/tracks/{config.track}/leaderboard")
    days = {row["version_id"]: row["metrics"]["days"] for row in board["rows"]}
    assert days == {version_id: DAYS - 1, **{b: DAYS - 1 for b in builtin}}
    assert set(board["curves"]) >= {version_id, *builtin}

    with Client(server.url, tokens["admin"]) as admin:
        promoted = admin.promote(version_id, "the external model, on its shadow record",
                                 force=True)
    assert promoted["version"]["kind"] == "external"
    assert promoted["transition"]["to_state"] == "champion"

    with Client(server.url, tokens["read"]) as reader:
        champion = reader.champion(config.track)
    assert (champion["version_id"], champion["kind"]) == (version_id, "external")
    assert champion["provenance"]["uri"] == model.resolve().as_uri()

    class Ridge:
        def __init__(self, meta: dict) -> None:
            self.coefficients = np.load(Path(meta["provenance"]["uri"][len("file://"):])
                                        )["coefficients"]

        def predict(self, signals: np.ndarray) -> np.ndarray:
            return signals @ self.coefficients

    with load_champion(config.track, url=server.url, token=tokens["read"],
                       external_loader=Ridge) as predictor:
        assert predictor.version_id == version_id
        assert predictor.predict(np.eye(3)).tolist() == predictor.predictor.coefficients.tolist()
    with pytest.raises(ConfigError, match="pass external_loader= to load it") as err:
        load_champion(config.track, url=server.url, token=tokens["read"])
    assert err.value.code == "external_loader_required"

    register = ["external", "register", "--track", config.track, "--label", "vendor-x",
                "--train-cutoff", str(last), "--uri", "s3://vendor/x.onnx",
                "--metadata", '{"vendor": "x"}']
    first, again = cli(*register, env=env), cli(*register, env=env)
    assert first.returncode == again.returncode == 0, first.stderr
    assert first.stdout == again.stdout and first.stdout.startswith(
        f"vendor-x-{last:%Y%m%d}-")
    bad = cli(*register[:-2], "--metadata", "{not json", env=env)
    assert bad.returncode == 2
    assert "Invalid value for --metadata: must be a JSON object" in bad.stderr
