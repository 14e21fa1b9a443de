"""Where training metrics go: the bundle's tables, TensorBoard, and W&B (offline by default).

Every metric is one row ``{step, split, metric, value}``. Rows are kept in memory, streamed to
TensorBoard (inside the bundle) and to W&B (outside it: W&B's run files must not break the
bundle's checksums), and written to ``metrics.jsonl`` / ``metrics.csv`` when the bundle is
sealed.

TensorBoard events go through tensorboardX's synchronous ``RecordWriter`` in batches, at most
every ``TENSORBOARD_WRITE_SECONDS`` and at close: the file ``SummaryWriter`` would write,
without its per-event multiprocessing queue (it pickles every event through a pipe to a writer
thread, which cost a tenth of a short epoch). The file is part of a reproducible bundle, so
its name and every event's wall time carry the ``stamp`` given (the training cutoff) where
``SummaryWriter`` would write the clock and the host; TensorBoard plots the points by step. How
long training took is in the trainer's result line, and so in the registry.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import os
import time
from pathlib import Path
from typing import Any

from tensorboardX.proto.event_pb2 import Event
from tensorboardX.proto.summary_pb2 import Summary
from tensorboardX.record_writer import RecordWriter

from trainer import jsonsafe
from trainer.config import ResolvedConfig

log = logging.getLogger(__name__)

METRIC_FIELDS = ("step", "split", "metric", "value")
TENSORBOARD_WRITE_SECONDS = 1.0


def wandb_run_name(config: ResolvedConfig, today: dt.date | None = None) -> str:
    """``YYYYMMDD_<dataset>_<model>_<variant>`` (variant: the spec name, else the label)."""
    today = today or dt.date.today()
    variant = config.run.spec_name or config.train.label
    return f"{today:%Y%m%d}_{config.train.market.name}_{config.train.model}_{variant}"


def wandb_directory(config: ResolvedConfig) -> Path:
    """``$WANDB_DIR`` if set, else ``<datasets_root>/../wandb``: never inside a bundle."""
    if os.environ.get("WANDB_DIR"):
        return Path(os.environ["WANDB_DIR"])
    return Path(config.run.datasets_root).absolute().parent / "wandb"


def wandb_mode(config: ResolvedConfig) -> str:
    """``$WANDB_MODE`` wins over the config; ``online`` without an API key degrades to offline."""
    mode = os.environ.get("WANDB_MODE") or config.run.wandb.mode
    if mode == "online" and not os.environ.get("WANDB_API_KEY"):
        log.warning("W&B mode 'online' but WANDB_API_KEY is not set: logging offline instead")
        mode = "offline"
    if mode not in {"online", "offline", "disabled"}:
        log.warning("unknown W&B mode %r: logging offline", mode)
        mode = "offline"
    return mode


class MetricsLog:
    """Collects metric rows and mirrors them to TensorBoard and (optionally) W&B; ``stamp`` is
    the day (midnight UTC) every TensorBoard event carries, so the same run writes the same
    file whenever and wherever it runs."""

    def __init__(self, tensorboard_dir: Path, wandb_run: Any | None = None, *,
                 stamp: dt.date) -> None:
        self.rows: list[dict[str, Any]] = []
        Path(tensorboard_dir).mkdir(parents=True, exist_ok=True)
        self._wall_time = float(dt.datetime.combine(stamp, dt.time(), dt.UTC).timestamp())
        self._events = RecordWriter(os.path.join(
            tensorboard_dir, f"events.out.tfevents.{int(self._wall_time)}.podium"))
        # the first event of an event file names its version
        self._events.write(Event(wall_time=self._wall_time,
                                 file_version="brain.Event:2").SerializeToString())
        self._pending: list[Event] = []  # not yet in the file
        self._written = time.monotonic()
        self._wandb_run = wandb_run

    def log(self, step: int, split: str, values: dict[str, float]) -> None:
        rows = [{"step": int(step), "split": split, "metric": metric, "value": float(value)}
                for metric, value in values.items()]
        self.rows += rows
        # one event per call: its values share a step and a time (SummaryWriter writes one each)
        summary = Summary(value=[Summary.Value(tag=f"{split}/{row['metric']}",
                                               simple_value=row["value"]) for row in rows])
        self._pending.append(Event(summary=summary, step=int(step), wall_time=self._wall_time))
        if time.monotonic() - self._written >= TENSORBOARD_WRITE_SECONDS:
            self._write_events()
        if self._wandb_run is not None:
            self._wandb_run.log(
                {f"{split}/{metric}": float(value) for metric, value in values.items()},
                step=int(step),
            )

    def write_tables(self, bundle_dir: Path) -> None:
        with open(bundle_dir / "metrics.jsonl", "w", encoding="utf-8") as handle:
            for row in self.rows:
                handle.write(jsonsafe.dumps(row) + "\n")
        with open(bundle_dir / "metrics.csv", "w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=METRIC_FIELDS)
            writer.writeheader()
            writer.writerows(self.rows)

    def _write_events(self) -> None:
        for event in self._pending:
            self._events.write(event.SerializeToString())
        self._pending.clear()
        self._events.flush()
        self._written = time.monotonic()

    def close(self) -> None:
        self._write_events()
        self._events.close()


def start_wandb_run(config: ResolvedConfig, *, extra_config: dict[str, Any]) -> Any | None:
    """A W&B run with the design's name and tags and the full resolved config (None: disabled)."""
    mode = wandb_mode(config)
    if mode == "disabled":
        return None
    import wandb  # imported late: it is slow and only needed when W&B is on

    directory = wandb_directory(config)
    directory.mkdir(parents=True, exist_ok=True)
    train = config.train
    return wandb.init(
        project=config.run.wandb.project,
        entity=config.run.wandb.entity,
        name=wandb_run_name(config),
        job_type="train",
        tags=[
            f"experiment:{config.run.experiment}",
            f"dataset:{train.market.name}",
            f"model:{train.model}",
            "run_type:train",
        ],
        config={**config.model_dump(mode="json"), **extra_config},
        dir=str(directory),
        mode=mode,
        settings=wandb.Settings(
            console="off", silent=True, x_disable_stats=True, disable_git=True, save_code=False
        ),
    )
