"""The artefact bundle: built in a temporary sibling, sealed with SHA256SUMS, renamed into place.

Layout (docs/architecture.md, "The artefact bundle")::

    checkpoint/      Orbax: {"model", "optimizer", "step"}
    metadata.json    config, dataset, seeds, code, environment, architecture, window, metrics
    metrics.jsonl    rows {step, split, metric, value}
    metrics.csv      the same rows
    summary.yaml     best metrics, early-stopping step, epochs and steps
    tensorboard/     event files
    SHA256SUMS       every file above (written last)

Reproducible: the same config and data, trained by the same code in the same environment, give
the same bytes in every file and so the same digest, here or on a cluster's worker. So nothing
sealed says when or where the bundle was made, or how long it took: no clock (the registry
records when a version was registered; the trainer's result line, kept in the registry, how
long it trained), no host, no path (the datasets root and the dataset's place differ from one
machine or artefacts root to another; the data itself is pinned by its fingerprint).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from trainer import jsonsafe
from trainer.checksums import write_sha256sums
from trainer.config import ResolvedConfig
from trainer.provenance import code_version, environment
from trainer.window import TARGET_SCALE, TrainingData

if TYPE_CHECKING:  # pragma: no cover
    from trainer.train import FitResult

METADATA_SCHEMA_VERSION = 2  # 2: no created_at, training_seconds or paths


class BundleError(RuntimeError):
    """The bundle cannot be written where it was asked to go."""


def prepare_staging(out: Path) -> Path:
    """Refuse a non-empty ``out``; return a fresh temporary sibling to build the bundle in."""
    out = Path(out).absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BundleError(f"--out {out} already exists and is not empty; refusing to overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    return staging


STRAGGLER_SWEEPS = (0.0, 0.2, 0.5)  # seconds to wait before each sweep of a failed staging


def discard_staging(staging: Path) -> None:
    """Remove a failed run's staging directory, and again once late writes have landed.

    A checkpoint write that fails (a full disk) raises on its first failed leaf while TensorStore
    may still be writing others in its own threads; such a write can re-create its directory
    after the first sweep. Sweeping again after a short pause removes what lands late."""
    for pause in STRAGGLER_SWEEPS:
        time.sleep(pause)
        shutil.rmtree(staging, ignore_errors=True)


def seal_bundle(staging: Path, out: Path) -> Path:
    """Write SHA256SUMS last, then rename the finished bundle into place."""
    out = Path(out).absolute()
    write_sha256sums(staging)
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()  # an empty directory made for us is fine to replace
    os.rename(staging, out)
    return out


def write_descriptors(
    staging: Path,
    *,
    config: ResolvedConfig,
    data: TrainingData,
    dataset: dict,
    fitted: FitResult,
    architecture: dict,
) -> None:
    """``metadata.json`` and ``summary.yaml``; ``dataset`` describes the data source (kind,
    name, fingerprint, and for a panel its format, rows, assets, days and digest)."""
    train = config.train
    metrics_summary = {
        **fitted.best,
        "best_step": fitted.best_step,
        "best_epoch": fitted.best_epoch,
        "steps_completed": fitted.steps_completed,
        "epochs_completed": fitted.epochs_completed,
        "stopped_early": fitted.stopped_early,
    }
    metadata = {
        "schema_version": METADATA_SCHEMA_VERSION,
        "resolved_config": config.model_dump(mode="json", exclude={"run": {"datasets_root"}}),
        "train_config": train.model_dump(mode="json"),
        "spec_name": config.run.spec_name,
        "overrides": config.run.overrides,
        "experiment": config.run.experiment,
        "dataset": dataset,
        "seeds": {"train": train.seed, "market": train.market.seed},
        "code": code_version(),
        "environment": environment(),
        "architecture": architecture,
        "feature_names": data.feature_names,
        "target": {
            "forward_days": train.forward_days,
            "scale": TARGET_SCALE,
            "xsec_demean": train.xsec_demean,
        },
        "training_window": data.window(),
        "metrics": metrics_summary,
    }
    (staging / "metadata.json").write_text(
        jsonsafe.dumps(metadata, indent=True, sort_keys=True) + "\n", encoding="utf-8"
    )
    summary = {
        "best": dict(fitted.best),  # val_loss, val_rank_ic, train_loss
        "early_stopping_step": fitted.best_step,
        "best_epoch": fitted.best_epoch,
        "epochs_completed": fitted.epochs_completed,
        "steps_completed": fitted.steps_completed,
        "stopped_early": fitted.stopped_early,
        "train_cutoff": data.train_cutoff.isoformat(),
    }
    (staging / "summary.yaml").write_text(yaml.safe_dump(summary, sort_keys=False))
