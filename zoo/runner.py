"""Run one spec: resolve it, train it in a child process with a hard deadline, register it.

The trainer runs as ``python -m trainer --config-file RESOLVED.json --out STAGING`` in its own
process group (killed whole at ``time_budget_seconds`` plus ``zoo.kill_grace_seconds``, and
with the zoo if the zoo dies: see ``zoo.deathsig``).
Its bundle lands in ``runs/<run_id>/bundle``; only after the result line parses and SHA256SUMS
verifies is it committed to ``models/<track>/<version_id>`` (renamed there, or uploaded to a
bucket: ``registry.integrity.commit_bundle``) and registered as a challenger. So an
incomplete run never leaves a bundle where a sealed one would be, and never registers anything.

``run_spec`` is the local executor: ``begin_run`` → ``needs_training`` → ``run_trainer`` →
``finish_run`` → ``end_run``, in this process. ``zoo.ray_executor`` takes the same steps but runs
``run_trainer`` on a cluster's worker.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from registry import store
from registry.config import ModelSpec, PodiumConfig
from registry.db import read_session, write_session
from registry.errors import IntegrityFailure, InvalidData, PodiumError
from registry.history import verify_history
from registry.integrity import (
    bundle_exists,
    bundle_key,
    commit_bundle,
    verify_bundle,
    verify_stored_bundle,
)
from registry.models import ModelVersion
from registry.storage import artefact_store, store_environment
from trainer.dataset import ensure_dataset
from trainer.panel import PanelError
from trainer.sources import open_source
from trainer.window import WindowError, resolve_cutoff
from zoo.runs import RunRecord, append_run
from zoo.specs import ResolvedSpec, resolve_spec

TRAINER_COMMAND: tuple[str, ...] = (sys.executable, "-m", "trainer")
POLL_SECONDS = 0.25

# called while the trainer runs: (spec name, elapsed seconds, its last log line)
TrainingProgressCallback = Callable[[str, float, str], None]


@dataclass(frozen=True)
class TrainerResult:
    status: str  # ok | failed | timeout
    payload: dict[str, Any]
    message: str


@dataclass
class SpecRun:
    """One spec on its way through the zoo: what it resolves to, and the record of the run."""

    resolved: ResolvedSpec
    record: RunRecord
    key: str  # where its sealed bundle goes in the artefact store: models/<track>/<version_id>
    final: str  # that place, as a path or a URL
    run_dir: Path  # runs/<run_id>: the resolved config, the trainer's log and staged bundle
    clock: float
    existing: ModelVersion | None = None

    @property
    def staged(self) -> Path:
        return self.run_dir / "bundle"


def run_spec(config: PodiumConfig, spec: ModelSpec, *, engine: Engine, force: bool = False,
             trainer_command: Sequence[str] = TRAINER_COMMAND,
             progress: TrainingProgressCallback | None = None) -> RunRecord:
    """Train and register one spec; always returns (and records) what happened."""
    run = begin_run(config, spec, engine=engine)
    try:
        with failures_recorded(config, run):
            if needs_training(config, run, engine=engine, force=force):
                result = run_trainer(config, run.resolved, run_dir=run.run_dir, out=run.staged,
                                     trainer_command=trainer_command, progress=progress)
                finish_run(config, run, result, engine=engine)
    finally:
        end_run(config, run)
    return run.record


def begin_run(config: PodiumConfig, spec: ModelSpec, *, engine: Engine) -> SpecRun:
    """Resolve a spec against the landed data (refusing a rewritten day of its window) and open
    its record (status ``failed`` until something better is known)."""
    started, clock = dt.datetime.now(dt.UTC), time.monotonic()
    run_id = f"{started:%Y%m%dT%H%M%S}-{spec.name}-{secrets.token_hex(3)}"
    resolved = resolve_for_data(config, spec, engine=engine)
    record = RunRecord(run_id=run_id, spec=spec.name, version_id=resolved.version_id,
                       status="failed", started_at=started, duration_seconds=0.0,
                       train_cutoff=resolved.train_cutoff)
    key = bundle_key(track=config.track, version_id=resolved.version_id)
    return SpecRun(resolved, record, key, artefact_store(config).location(key),
                   config.artefacts_root / "runs" / run_id, clock)


@contextmanager
def failures_recorded(config: PodiumConfig, run: SpecRun) -> Iterator[None]:
    """A domain or storage error fails this spec, with its reason; the zoo goes on."""
    try:
        yield
    except PodiumError as exc:
        run.record.status, run.record.message = "failed", exc.detail
    except OSError as exc:  # disk full, read-only root, …
        where = exc.filename or f"under the artefacts root {config.artefacts_root}"
        run.record.status, run.record.message = "failed", f"{exc.strerror or exc}: {where}"


def end_run(config: PodiumConfig, run: SpecRun) -> None:
    """Time the run and append it to runs.parquet (saying so in its message if that fails)."""
    record = run.record
    record.duration_seconds = round(time.monotonic() - run.clock, 3)
    try:
        append_run(config.artefacts_root, record)
    except OSError as exc:  # the run's outcome stands; say why runs.parquet lacks it
        record.message += f" (not recorded in runs.parquet: {exc.strerror or exc})"


def resolve_for_data(config: PodiumConfig, spec: ModelSpec, *,
                     engine: Engine | None = None) -> ResolvedSpec:
    """Resolve a spec against the track's data as it has landed (the synthetic market is
    created first if needed). Data that breaks the panel contract is ``InvalidData``; with
    ``engine``, a day of the training window whose content changed since a shadow run used it
    is ``HistoryChanged`` (the day named). Either way nothing is trained or registered."""
    if config.trainer.panel is None:
        try:
            ensure_dataset(config.datasets_root, config.market)
        except OSError as exc:  # disk full, read-only root: every spec needs the dataset
            raise PodiumError(f"cannot create the market dataset under {config.datasets_root}:"
                              f" {exc.strerror or exc}", code="storage_error") from None
    try:
        source = open_source(config.datasets_root, config.trainer,
                             store_settings=config.object_store)
        landed = source.landed_days()
        cutoff = resolve_cutoff(landed, config.trainer.train_cutoff)
        fingerprint = source.fingerprint(cutoff, config.trainer)
        digests = source.training_digests(cutoff, config.trainer)
    except (PanelError, WindowError) as exc:  # bad data: nothing is trained or registered
        raise InvalidData(str(exc)) from None
    if engine is not None:
        verify_history(engine, track=config.track, digests=digests)
    return resolve_spec(config, spec, train_cutoff=landed[-1], dataset_fingerprint=fingerprint)


def needs_training(config: PodiumConfig, run: SpecRun, *, engine: Engine, force: bool) -> bool:
    """Settle a spec that needs no trainer (already registered: skipped; a sealed bundle left
    by an interrupted registration: registered now), else make its run directory."""
    record, resolved = run.record, run.resolved
    with read_session(engine) as session:
        run.existing = store.find_by_fingerprint(session, resolved.fingerprint)
    if run.existing is not None and not force:
        record.status = "skipped"
        record.message = f"already registered as {run.existing.version_id} ({run.existing.state})"
        record.bundle_path = run.final
        return False
    artefacts = artefact_store(config)
    if run.existing is None and bundle_exists(artefacts, run.key):
        # A sealed bundle whose registration was interrupted: verify it and finish the job.
        verify_stored_bundle(artefacts, run.key)
        _register(config, resolved, engine=engine, details={"recovered": True})
        record.status, record.bundle_path = "registered", run.final
        record.message = "registered a sealed bundle left by an interrupted run"
        return False
    run.run_dir.mkdir(parents=True)
    record.log_path = str(run.run_dir / "trainer.log")
    return True


def finish_run(config: PodiumConfig, run: SpecRun, result: TrainerResult, *,
               engine: Engine) -> None:
    """Given the trainer's result: verify the staged bundle, move it into place, register it."""
    record, staged = run.record, run.staged
    record.metrics = {k: v for k, v in result.payload.items() if k.startswith("val_")}
    if result.status != "ok":
        record.status, record.message = result.status, result.message
        return
    try:
        verify_bundle(staged)
    except IntegrityFailure as exc:
        record.status, record.message = "failed", f"the trainer's bundle is not sealed: {exc}"
        return
    if run.existing is not None:  # forced: keep the registered bundle, keep this one to compare
        record.status, record.bundle_path = "retrained", str(staged)
        record.message = f"retrained {run.existing.version_id}; the registered bundle is unchanged"
        return
    # a rename, or an upload committed by SHA256SUMS
    commit_bundle(artefact_store(config), staged, run.key)
    record.bundle_path = run.final
    _register(config, run.resolved, engine=engine, details={"result": result.payload})
    record.status, record.message = "registered", "registered as a challenger"


def _register(config: PodiumConfig, resolved: ResolvedSpec, *, engine: Engine,
              details: dict[str, Any]) -> None:
    with write_session(engine) as session:
        store.register_version(
            session, track=config.track, version_id=resolved.version_id,
            fingerprint=resolved.fingerprint, artefacts_root=artefact_store(config),
            actor="zoo", spec_name=resolved.spec.name,
            details={"spec": resolved.spec.name, "overrides": resolved.spec.overrides,
                     "dataset_fingerprint": resolved.dataset_fingerprint,
                     "train": resolved.train.model_dump(mode="json"), **details},
        )


def resolved_config_json(config: PodiumConfig, resolved: ResolvedSpec) -> dict[str, Any]:
    """The file handed to the trainer: ``{"train": …, "run": …}`` (trainer.config)."""
    return {
        "train": resolved.train.model_dump(mode="json"),
        "run": {"datasets_root": str(config.datasets_root), "spec_name": resolved.spec.name,
                "overrides": resolved.spec.overrides, "experiment": config.track,
                "wandb": config.wandb.model_dump(mode="json")},
    }


def run_trainer(config: PodiumConfig, resolved: ResolvedSpec, *, run_dir: Path, out: Path,
                trainer_command: Sequence[str] = TRAINER_COMMAND,
                progress: TrainingProgressCallback | None = None) -> TrainerResult:
    """Run the trainer child; kill its whole process group at the hard deadline."""
    config_file = run_dir / "resolved.json"
    config_file.write_text(json.dumps(resolved_config_json(config, resolved), indent=2) + "\n")
    grace = config.zoo.kill_grace_seconds
    deadline = resolved.train.time_budget_seconds + grace
    # a panel in a bucket is read by the trainer with the configuration's store settings
    env = {**os.environ, **store_environment(config.object_store), "PYTHONUNBUFFERED": "1"}
    env.setdefault("WANDB_DIR", str(config.artefacts_root / "wandb"))
    log_path, stdout_path = run_dir / "trainer.log", run_dir / "stdout.txt"
    with open(log_path, "wb") as log, open(stdout_path, "wb") as stdout:
        child = subprocess.Popen(
            [sys.executable, "-m", "zoo.deathsig", str(os.getpid()), *trainer_command,
             "--config-file", str(config_file), "--out", str(out)],
            stdout=stdout, stderr=log, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True,
        )
        started = time.monotonic()
        while True:
            try:
                child.wait(timeout=POLL_SECONDS)
                break
            except subprocess.TimeoutExpired:
                elapsed = time.monotonic() - started
                if progress is not None:
                    progress(resolved.spec.name, elapsed, last_log_line(log_path))
                if elapsed >= deadline:
                    _kill_group(child)
                    return TrainerResult("timeout", {}, f"killed at the hard deadline "
                                         f"({deadline:.0f} s = budget + {grace:.0f} s)")
    return parse_result(stdout_path.read_bytes(), child.returncode, log_path)


def parse_result(stdout: bytes, returncode: int, log_path: Path) -> TrainerResult:
    """Exactly one JSON object on stdout, or the run failed (and says why)."""
    lines = [line for line in stdout.decode("utf-8", "replace").splitlines() if line.strip()]
    payload: dict[str, Any] = {}
    if len(lines) == 1:
        try:
            parsed = json.loads(lines[0])
            payload = parsed if isinstance(parsed, dict) else {}
        except json.JSONDecodeError:
            payload = {}
    if not payload.get("status"):
        shown = (lines[0][:120] if lines else "nothing")
        return TrainerResult("failed", {}, f"the trainer printed {len(lines)} line(s) on stdout "
                             f"instead of one JSON result (first: {shown!r}); exit code "
                             f"{returncode}; log: {log_path}")
    if returncode != 0 or payload["status"] != "ok":
        message = str(payload.get("message") or f"exit code {returncode}")
        return TrainerResult("failed", payload, f"the trainer failed: {message} "
                             f"(log: {log_path})")
    return TrainerResult("ok", payload, "")


def _kill_group(child: subprocess.Popen) -> None:
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    child.wait()


def last_log_line(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - 400))
            tail = handle.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return ""
    return tail[-1][:100] if tail else ""
