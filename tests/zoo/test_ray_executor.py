"""The zoo on a real local Ray cluster (two nodes of one CPU each, started with Ray's tooling):
the same versions as the sequential zoo, failures that stay with their spec, the deadline, Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from registry import migrations, store
from registry.config import ModelSpec, ResourceRequest
from registry.db import make_engine, read_session
from registry.errors import ConfigError, Unavailable
from registry.integrity import bundle_dir
from tests.conftest import REPO
from tests.shadow.conftest import trained  # noqa: F401  (two real tiny bundles, once a run)
from tests.zoo.conftest import TINY, tiny_config
from tests.zoo.test_runner import _processes_mentioning, registered
from trainer import load_model
from trainer.checksums import sums_digest
from zoo.runs import read_runs
from zoo.specs import active_specs, resources_for

ray = pytest.importorskip("ray")

from tests.zoo.ray_cluster import LocalCluster  # noqa: E402
from zoo.ray_executor import CANCELLED, check_resources, connect, run_specs_on_ray  # noqa: E402

# one worker runs this module: its module fixture is built once
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray-cluster")]

# Stands in for the trainer per spec: fails, hangs (to be killed, or to pass its deadline), or
# hands over to the real trainer.
BEHAVIOURS = """\
import json, os, sys, time
argv = sys.argv[1:]
spec = json.load(open(argv[argv.index('--config-file') + 1]))['run']['spec_name']
if spec == 'boom':
    print(json.dumps({'status': 'error', 'message': 'boom: CUDA out of memory'}))
    raise SystemExit(1)
if spec in ('victim', 'hang'):
    time.sleep(600)
os.execv(sys.executable, [sys.executable, '-m', 'trainer', *argv])
"""


@pytest.fixture(scope="module")
def cluster():
    local = LocalCluster(nodes=2, cpus_per_node=1,
                         env={"WANDB_MODE": "disabled", "PYTHONPATH": str(REPO)})
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture
def zoo_db(tmp_path: Path):
    """A factory: examples/tiny.yaml on a migrated SQLite file and its own artefacts root."""
    engines = []

    def make(name: str, **changes):
        url = f"sqlite:///{tmp_path / f'{name}.db'}"
        engine = make_engine(url)
        migrations.upgrade(engine)
        engines.append(engine)
        return tiny_config(url, tmp_path / name, **changes), engine

    os.environ["WANDB_MODE"] = "disabled"
    yield make
    for engine in engines:
        engine.dispose()


def bundle_digests(engine) -> dict[str, str]:
    with read_session(engine) as session:
        return {v.version_id: v.bundle_digest for v in store.list_versions(session)}


def test_three_specs_in_parallel_register_what_the_sequential_zoo_does(
        cluster, zoo_db, trained) -> None:  # noqa: F811 (the fixture's value)
    template, sequential = trained  # two of the specs, trained one after another by run_spec
    config, engine = zoo_db("on-ray")
    specs = active_specs(config)
    assert len(specs) == 3  # more tasks than the cluster's two nodes: one waits for a node
    seen = []
    parallel = run_specs_on_ray(config, specs, engine=engine, address=cluster.address,
                                on_record=seen.append)
    assert [r.status for r in parallel] == ["registered"] * 3, [r.message for r in parallel]
    assert [r.spec for r in parallel] == [s.name for s in specs]
    assert sorted(r.spec for r in seen) == sorted(s.name for s in specs)
    digests = bundle_digests(engine)
    assert set(digests) == {r.version_id for r in parallel}
    for ours in parallel:
        bundle = Path(ours.bundle_path)
        assert bundle.parent.parent == config.artefacts_root.resolve() / "models"
        # the registry holds the digest of the bundle the worker sealed, which loads
        assert digests[ours.version_id] == sums_digest(bundle)
        assert load_model(bundle, expected_digest=digests[ours.version_id]).feature_names
        assert ours.metrics
    by_spec = {r.spec: r for r in parallel}
    assert len(sequential) == 2
    for version_id, _, spec in sequential:
        # the same version as the sequential run's, file for file (though trained by a Ray
        # worker under another artefacts root)
        ours, theirs = by_spec[spec], bundle_dir(template, track=config.track,
                                                 version_id=version_id)
        assert ours.version_id == version_id
        assert ((Path(ours.bundle_path) / "SHA256SUMS").read_text()
                == (theirs / "SHA256SUMS").read_text())
        assert digests[version_id] == sums_digest(theirs)
    runs = read_runs(config.artefacts_root)
    assert sorted(runs["status"]) == ["registered"] * 3

    again = run_specs_on_ray(config, specs, engine=engine, address=cluster.address)
    assert [r.status for r in again] == ["skipped"] * 3  # nothing sent


def test_a_failing_spec_and_a_killed_worker_fail_alone(cluster, zoo_db, tmp_path):
    script = tmp_path / "behaviours.py"
    script.write_text(BEHAVIOURS)
    specs = (ModelSpec(name="boom"), ModelSpec(name="victim"),
             ModelSpec(name="linear-5d", overrides={"label": "v1-linear"}))
    config, engine = zoo_db("faults", model_specs=specs)
    killed: list[int] = []

    def kill_the_victims_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for pid in _processes_mentioning("-victim-"):
                worker = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
                os.kill(worker, signal.SIGKILL)
                killed.extend([worker, pid])
                return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_the_victims_worker)
    killer.start()
    records = run_specs_on_ray(config, list(specs), engine=engine, address=cluster.address,
                               trainer_command=[sys.executable, str(script)])
    killer.join()
    boom, victim, linear = records
    assert (boom.status, victim.status, linear.status) == ("failed", "failed", "registered"), \
        [r.message for r in records]
    assert "the trainer failed: boom: CUDA out of memory" in boom.message
    assert "the Ray worker training it died mid-run" in victim.message
    assert list(registered(engine)) == [linear.version_id]
    assert not any((config.artefacts_root / "models").rglob(f"{victim.version_id}*"))
    assert _processes_mentioning("-victim-") == []  # its trainer died with the worker
    runs = read_runs(config.artefacts_root).set_index("spec")
    assert runs.loc["victim", "status"] == "failed"


def test_the_hard_deadline_kills_the_trainer_on_its_worker(cluster, zoo_db, tmp_path):
    script = tmp_path / "behaviours.py"
    script.write_text(BEHAVIOURS)
    config, engine = zoo_db("deadline", model_specs=(ModelSpec(name="hang"),))
    config = config.model_copy(update={  # the deadline is about the grace, 2 s here
        "trainer": config.trainer.model_copy(update={"time_budget_seconds": 0.01}),
        "zoo": config.zoo.model_copy(update={"kill_grace_seconds": 2.0})})
    [record] = run_specs_on_ray(config, config.model_specs, engine=engine,
                                address=cluster.address,
                                trainer_command=[sys.executable, str(script)])
    assert record.status == "timeout"
    assert "killed at the hard deadline (2 s = budget + 2 s)" in record.message
    assert registered(engine) == {}
    assert _processes_mentioning(str(script)) == []


def test_ctrl_c_cancels_the_outstanding_tasks_and_registers_nothing(cluster, zoo_db):
    config, engine = zoo_db("interrupted")
    env = {**os.environ, "PODIUM_DATABASE_URL": str(engine.url),
           "PODIUM_ARTEFACTS_ROOT": str(config.artefacts_root), "WANDB_MODE": "disabled"}
    zoo = subprocess.Popen([str(Path(sys.executable).parent / "zoo"), "--all-active",
                            "--executor", "ray", "--address", cluster.address,
                            "--config", str(TINY)], env=env, cwd=REPO,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs_dir = config.artefacts_root / "runs"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(runs_dir.glob("*/resolved.json")):
        time.sleep(0.05)  # a worker has started a trainer
    assert any(runs_dir.glob("*/resolved.json")), zoo.communicate(timeout=30)
    zoo.send_signal(signal.SIGINT)
    stdout, stderr = zoo.communicate(timeout=60)
    assert zoo.returncode == 130, stderr
    assert stdout.count("cancelled: the zoo was interrupted") == 3, stdout
    assert registered(engine) == {}
    assert not any((config.artefacts_root / "models").rglob("SHA256SUMS"))
    for _ in range(100):
        if not _processes_mentioning(str(runs_dir)):
            break
        time.sleep(0.1)
    assert _processes_mentioning(str(runs_dir)) == []
    runs = read_runs(config.artefacts_root)
    assert list(runs["status"]) == ["failed"] * 3
    assert set(runs["message"]) == {CANCELLED}


def test_bad_addresses_and_resources_no_node_has_are_clear_errors(cluster, zoo_db, tmp_path):
    with pytest.raises(Unavailable, match="no Ray cluster answers at 127.0.0.1:9"):
        connect(ray, "127.0.0.1:9")
    with pytest.raises(ConfigError, match="cluster address 'nowhere' is not HOST:PORT"):
        connect(ray, "nowhere")
    config, engine = zoo_db("greedy", model_specs=(
        ModelSpec(name="gpu", resources=ResourceRequest(num_gpus=1)),))
    with pytest.raises(ConfigError, match=r"spec 'gpu' asks for 1 CPU, 1 GPU, which no node of "
                                          r"the Ray cluster at .* has \(nodes: 1 CPU, 0 GPU"):
        run_specs_on_ray(config, config.model_specs, engine=engine, address=cluster.address)
    assert registered(engine) == {}
    assert not (config.artefacts_root / "runs").exists()


def test_a_spec_sets_the_resources_it_needs_over_the_zoos() -> None:
    config = tiny_config("sqlite://", Path("/nonexistent"))
    config = config.model_copy(update={"zoo": config.zoo.model_copy(
        update={"resources": ResourceRequest(num_cpus=2, memory=2**30)})})
    plain, gpu = ModelSpec(name="plain"), ModelSpec(name="gpu", resources={"num_gpus": 1})
    assert resources_for(config, plain) == ResourceRequest(num_cpus=2, memory=2**30)
    assert resources_for(config, gpu) == ResourceRequest(num_cpus=2, num_gpus=1, memory=2**30)
    nodes = [{"CPU": 4.0, "memory": 8.0 * 2**30}, {"CPU": 1.0, "GPU": 1.0, "memory": 2.0**31}]
    check_resources(nodes, {"gpu": ResourceRequest(num_gpus=1)}, address="a:1")
    with pytest.raises(ConfigError, match="spec 'gpu' asks for 2 CPU, 1 GPU, 1.0 GiB memory"):
        check_resources(nodes, {"gpu": resources_for(config, gpu)}, address="a:1")
