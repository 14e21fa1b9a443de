"""The zoo against the real trainer, and against trainers that misbehave."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from registry import store
from registry.config import ModelSpec
from registry.db import read_session
from registry.integrity import bundle_dir
from tests.conftest import REPO
from tests.zoo.conftest import TINY
from trainer.config import TrainConfig
from trainer.dataset import open_feed
from trainer.features import forward_target
from zoo.runner import run_spec
from zoo.runs import read_runs
from zoo.specs import active_specs

pytestmark = pytest.mark.slow
VERSION_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*-\d{8}-[0-9a-f]{8}$")


def registered(engine) -> dict[str, str]:
    with read_session(engine) as session:
        return {v.version_id: v.state for v in store.list_versions(session)}


def test_all_active_registers_one_challenger_each_then_nothing_new(tiny) -> None:
    config, engine = tiny
    specs = active_specs(config)
    first = [run_spec(config, spec, engine=engine) for spec in specs]
    assert [r.status for r in first] == ["registered"] * len(specs), [r.message for r in first]
    assert set(registered(engine)) == {r.version_id for r in first}
    assert set(registered(engine).values()) == {"challenger"}
    assert all(VERSION_ID.match(r.version_id) for r in first)
    second = [run_spec(config, spec, engine=engine) for spec in specs]
    assert [r.status for r in second] == ["skipped"] * len(specs)
    assert "already registered as" in second[0].message
    with read_session(engine) as session:
        before = store.get_version(session, first[0].version_id).bundle_digest
    forced = run_spec(config, specs[0], engine=engine, force=True)
    assert forced.status == "retrained", forced.message
    with read_session(engine) as session:
        assert store.get_version(session, first[0].version_id).bundle_digest == before
    runs = read_runs(config.artefacts_root)
    assert list(runs["status"]) == ["registered"] * 3 + ["skipped"] * 3 + ["retrained"]
    assert set(runs.columns) >= {"spec", "version_id", "status", "duration_seconds",
                                 "bundle_path", "log_path", "metrics"}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # about training
def test_a_sixty_day_spec_really_trains_on_sixty_day_targets(tiny) -> None:
    """The reference PR's documented limitation, closed: no derived value keeps a stale horizon."""
    config, engine = tiny
    spec = ModelSpec(name="h60", overrides={"forward_days": 60, "label": "v2-h60"})
    record = run_spec(config, spec, engine=engine)
    assert record.status == "registered", record.message
    meta = json.loads((Path(record.bundle_path) / "metadata.json").read_text())
    assert meta["train_config"]["forward_days"] == 60
    assert meta["target"]["forward_days"] == 60
    feed = open_feed(config.datasets_root, config.market)
    days = feed.landed_days()
    cutoff = days.index(record.train_cutoff)
    window = meta["training_window"]
    # The last validation row is exactly 60 trading days before the cutoff: its target is the
    # sum of the 60 returns up to the cutoff, and the next day's would need a return after it.
    assert window["validation_rows_to"] == days[cutoff - 60].isoformat()
    returns = feed.returns(end=record.train_cutoff).to_numpy()
    target = forward_target(returns, TrainConfig(forward_days=60, xsec_demean=False,
                                                 market=config.market))
    assert np.isfinite(target[cutoff - 60]).any()
    assert not np.isfinite(target[cutoff - 59]).any()
    raw = returns[cutoff - 59: cutoff + 1].sum(axis=0)
    assert np.allclose(target[cutoff - 60], raw, equal_nan=True) or \
        np.allclose(target[cutoff - 60] * 100, raw * 100, equal_nan=True)


# A trainer's way to fail: its script, and the status and message the zoo records.
MISBEHAVING = {
    "crash": ("import sys, pathlib\nout = pathlib.Path(sys.argv[sys.argv.index('--out') + 1])\n"
              "out.mkdir(parents=True)\n(out / 'metadata.json').write_text('{}')\n"
              "raise SystemExit('boom: CUDA out of memory')\n",
              "failed", "exit code 1"),
    "garbage": ("print('loss=0.1')\nprint('all done!')\n",
                "failed", "printed 2 line(s) on stdout instead of one JSON result"),
    "error-json": ("import json; print(json.dumps({'status': 'error', 'message': 'bad knob'}))\n"
                   "raise SystemExit(2)\n",
                   "failed", "the trainer failed: bad knob"),
    "hang": ("import subprocess, sys, time\n"
             "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
             "time.sleep(600)\n",
             "timeout", "killed at the hard deadline (3 s = budget + 2 s)"),
}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # nothing reaches the database
def test_faulty_trainers_register_nothing_and_the_next_run_completes(tiny, tmp_path):
    """Each way a trainer can fail, one after another on the same spec: none registers or
    leaves a bundle or a process, and then the real trainer's run completes."""
    config, engine = tiny
    spec = active_specs(config)[0]
    for behaviour, (code, status, message) in MISBEHAVING.items():
        faulty = config
        if behaviour == "hang":  # hard deadline = 1 s budget + the grace (15 s; 2 s here)
            faulty = config.model_copy(update={
                "trainer": config.trainer.model_copy(update={"time_budget_seconds": 1.0}),
                "zoo": config.zoo.model_copy(update={"kill_grace_seconds": 2.0})})
        script = tmp_path / f"{behaviour}.py"
        script.write_text(code)
        record = run_spec(faulty, spec, engine=engine,
                          trainer_command=[sys.executable, str(script)])
        assert (behaviour, record.status) == (behaviour, status), record.message
        assert message in record.message, behaviour
        assert registered(engine) == {}, behaviour
        assert not bundle_dir(config.artefacts_root, track=config.track,
                              version_id=record.version_id).exists(), behaviour
        assert _processes_mentioning(str(script)) == [], behaviour
    again = run_spec(config, spec, engine=engine)  # the real trainer, on the usual budget
    assert again.status == "registered", again.message
    assert list(registered(engine)) == [again.version_id]
    assert list(read_runs(config.artefacts_root)["status"]) == [
        expected for _, expected, _ in MISBEHAVING.values()] + ["registered"]


def test_zoo_killed_with_sigkill_mid_run_leaves_nothing_half_done(tiny, db_url, tmp_path):
    config, engine = tiny
    env = {**os.environ, "PODIUM_DATABASE_URL": db_url,
           "PODIUM_ARTEFACTS_ROOT": str(config.artefacts_root), "WANDB_MODE": "disabled"}
    zoo = subprocess.Popen([str(Path(sys.executable).parent / "zoo"), "--spec", "linear-5d",
                            "--config", str(TINY)], env=env, cwd=REPO,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs_dir = config.artefacts_root / "runs"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(runs_dir.glob("*/resolved.json")):
        time.sleep(0.05)
    run_dir = next(runs_dir.glob("*/resolved.json")).parent
    time.sleep(0.5)  # the trainer is importing JAX or training now
    zoo.send_signal(signal.SIGKILL)
    zoo.wait(timeout=10)
    for _ in range(100):  # the trainer child dies with its parent (PR_SET_PDEATHSIG)
        if not _processes_mentioning(str(run_dir)):
            break
        time.sleep(0.05)
    assert _processes_mentioning(str(run_dir)) == []
    assert registered(engine) == {}
    assert not (config.artefacts_root / "models").exists() or \
        not any((config.artefacts_root / "models").rglob("SHA256SUMS"))
    record = run_spec(config, active_specs(config)[0], engine=engine)
    assert record.status == "registered", record.message


def _processes_mentioning(needle: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            status = (proc / "status").read_text()
        except OSError:
            continue
        if needle in cmdline and "State:\tZ" not in status:
            found.append(int(proc.name))
    return found
