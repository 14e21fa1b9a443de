"""The zoo on a Ray cluster: each spec one Ray task running the unchanged trainer on a worker.

The driver (the ``zoo`` process) resolves every spec and skips those already registered before
it sends anything. Each remaining spec becomes one task, with the resources its spec (or
``zoo.resources``) asks for, that runs ``zoo.runner.run_trainer`` on a worker node: the same
``python -m trainer --config-file … --out …`` child in its own process group, the same soft and
hard deadlines, killed whole at the hard one or with the worker if the worker dies. The bundle
lands in the run's staging directory under ``artefacts_root``, which every node must see at the
same path (a shared directory); the task returns the trainer's result line, and the driver
verifies, moves and registers each bundle as its task completes, exactly as the local executor
does, so a half bundle is never registered.

A worker that dies mid-run, a task that fails or exceeds its deadline fails that spec alone.
Ctrl-C cancels the outstanding tasks (killing their workers and so their trainers) and records
them as failed; nothing they started is registered.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Engine

from registry.config import ModelSpec, PodiumConfig, ResourceRequest
from registry.errors import ConfigError, Unavailable
from zoo.runner import (
    POLL_SECONDS,
    TRAINER_COMMAND,
    SpecRun,
    TrainerResult,
    begin_run,
    end_run,
    failures_recorded,
    finish_run,
    last_log_line,
    needs_training,
    run_trainer,
)
from zoo.runs import RunRecord
from zoo.specs import ResolvedSpec, resources_for

CONNECT_TIMEOUT_SECONDS = 5.0
CANCELLED = "cancelled: the zoo was interrupted; nothing it trained was registered"

# called while specs train on the cluster: (spec name, seconds trained or None while queued,
# the trainer's last log line)
ClusterProgress = Callable[[str, float | None, str], None]


def train_on_worker(config: PodiumConfig, resolved: ResolvedSpec, run_dir: Path,
                    trainer_command: Sequence[str]) -> TrainerResult:
    """The Ray task: run the trainer child on this node into the shared staging directory."""
    if not run_dir.is_dir():
        return TrainerResult("failed", {}, f"{run_dir} is not visible on node "
                             f"{socket.gethostname()}: every node must see the artefacts root "
                             f"{config.artefacts_root} at the same path (a shared directory)")
    return run_trainer(config, resolved, run_dir=run_dir, out=run_dir / "bundle",
                       trainer_command=trainer_command)


def run_specs_on_ray(config: PodiumConfig, specs: Sequence[ModelSpec], *, engine: Engine,
                     address: str | None, force: bool = False,
                     trainer_command: Sequence[str] = TRAINER_COMMAND,
                     on_record: Callable[[RunRecord], None] = lambda record: None,
                     progress: ClusterProgress | None = None) -> list[RunRecord]:
    """Train the specs as Ray tasks; returns every spec's record, in the order given."""
    ray = _import_ray()
    config = config.model_copy(update={"artefacts_root": config.artefacts_root.resolve()})
    connect(ray, address)
    try:
        requests = {spec.name: resources_for(config, spec) for spec in specs}
        check_resources(_alive_node_resources(ray), requests, address=address)
        records: dict[str, RunRecord] = {}
        to_train: list[SpecRun] = []
        for spec in specs:  # skip what is registered before anything is sent
            spec_run = begin_run(config, spec, engine=engine)
            records[spec.name] = spec_run.record
            with failures_recorded(config, spec_run):
                if needs_training(config, spec_run, engine=engine, force=force):
                    to_train.append(spec_run)
                    continue
            end_run(config, spec_run)
            on_record(spec_run.record)
        task = ray.remote(train_on_worker)
        pending = {}
        for spec_run in to_train:
            name = spec_run.resolved.spec.name
            ref = task.options(**_task_options(requests[name], name)).remote(
                config, spec_run.resolved, spec_run.run_dir, list(trainer_command))
            pending[ref] = spec_run
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS)
                for ref in done:
                    spec_run = pending.pop(ref)
                    with failures_recorded(config, spec_run):
                        finish_run(config, spec_run, _result(ray, ref), engine=engine)
                    end_run(config, spec_run)
                    on_record(spec_run.record)
                if progress is not None:
                    for spec_run in pending.values():
                        progress(spec_run.resolved.spec.name, *_trained_so_far(spec_run))
        except KeyboardInterrupt:
            for ref, spec_run in pending.items():
                ray.cancel(ref, force=True)  # kills the worker, and its trainer with it
                spec_run.record.message = CANCELLED
                end_run(config, spec_run)
                on_record(spec_run.record)
            raise
    finally:
        ray.shutdown()
    return [records[spec.name] for spec in specs]


def connect(ray: Any, address: str | None) -> None:
    """Join the cluster at ``address`` (unset: Ray's own choice), failing fast and clearly
    where nothing answers (Ray itself would retry for minutes)."""
    if address is not None and address != "auto":
        host, port = _host_port(address)
        try:
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_SECONDS).close()
        except OSError as exc:
            raise Unavailable(f"no Ray cluster answers at {address} ({exc.strerror or exc}); "
                              "start one (ray start --head) or pass its address with "
                              "--address HOST:PORT", code="cluster_unreachable") from None
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False,
                 configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise Unavailable(f"cannot join the Ray cluster at {address or 'the default address'}: "
                          f"{exc}", code="cluster_unreachable") from None


def check_resources(nodes: Sequence[Mapping[str, float]],
                    requests: Mapping[str, ResourceRequest], *, address: str | None) -> None:
    """Refuse, before any task is sent, a spec that no live node could ever run."""
    for spec_name, wanted in requests.items():
        if any(_fits(wanted, node) for node in nodes):
            continue
        asked = f"{wanted.num_cpus:g} CPU, {wanted.num_gpus:g} GPU" + (
            f", {wanted.memory / 2**30:.1f} GiB memory" if wanted.memory else "")
        offered = "; ".join(f"{node.get('CPU', 0):g} CPU, {node.get('GPU', 0):g} GPU, "
                            f"{node.get('memory', 0) / 2**30:.1f} GiB memory"
                            for node in nodes) or "no live node"
        raise ConfigError(f"spec {spec_name!r} asks for {asked}, which no node of the Ray "
                          f"cluster at {address or 'the default address'} has (nodes: "
                          f"{offered}); lower its resources or add a node that has them",
                          code="resources_unavailable")


def _fits(wanted: ResourceRequest, node: Mapping[str, float]) -> bool:
    return (node.get("CPU", 0) >= wanted.num_cpus and node.get("GPU", 0) >= wanted.num_gpus
            and (wanted.memory is None or node.get("memory", 0) >= wanted.memory))


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray executor needs Ray: pip install 'podium[ray]' (or run the "
                          "zoo with --executor local)", code="ray_missing") from None
    return ray


def _host_port(address: str) -> tuple[str, int]:
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise ConfigError(f"cluster address {address!r} is not HOST:PORT (or ray://HOST:PORT)",
                          code="invalid_address")
    return parts.hostname, port


def _alive_node_resources(ray: Any) -> list[dict[str, float]]:
    return [node["Resources"] for node in ray.nodes() if node.get("Alive")]


def _task_options(wanted: ResourceRequest, spec_name: str) -> dict[str, Any]:
    options: dict[str, Any] = {"num_cpus": wanted.num_cpus, "num_gpus": wanted.num_gpus,
                               "max_retries": 0, "name": f"zoo:{spec_name}"}
    if wanted.memory is not None:
        options["memory"] = wanted.memory
    return options


def _result(ray: Any, ref: Any) -> TrainerResult:
    """The task's trainer result, or why the task itself came to nothing."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:  # the task raised on its worker
        return TrainerResult("failed", {}, f"the training task failed on its worker: "
                             f"{type(exc.cause).__name__}: {exc.cause}")
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
            ray.exceptions.LocalRayletDiedError) as exc:
        return TrainerResult("failed", {}, f"the Ray worker training it died mid-run "
                             f"({type(exc).__name__}); its trainer died with it")
    except ray.exceptions.RayError as exc:
        return TrainerResult("failed", {}, f"the training task came to nothing: "
                             f"{type(exc).__name__}: {exc}")


def _trained_so_far(spec_run: SpecRun) -> tuple[float | None, str]:
    """Seconds since the worker wrote the resolved config (None: still queued), and the
    trainer's last log line; both read from the shared run directory."""
    try:
        started = (spec_run.run_dir / "resolved.json").stat().st_mtime
    except OSError:
        return None, "queued"
    return max(0.0, time.time() - started), last_log_line(Path(spec_run.record.log_path))
