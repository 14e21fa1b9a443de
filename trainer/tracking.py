"""Where training metrics go: the bundle's tables, TensorBoard, and W&B (offline by default).

Every metric is one row ``{step, split, metric, value}``. Rows are kept in memory, streamed to
TensorBoard (inside the bundle) and to W&B (outside it: W&B's run files must not break the
bundle's checksums), and written to ``metrics.jsonl`` / ``metrics.csv`` when the bundle is
sealed.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import os
from pathlib import Path
from typing import Any

from tensorboardX import SummaryWriter

from trainer import jsonsafe
from trainer.config import ResolvedConfig

log = logging.getLogger(__name__)

METRIC_FIELDS = ("step", "split", "metric", "value")


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
    """Collects metric rows and mirrors them to TensorBoard and (optionally) W&B."""

    def __init__(self, tensorboard_dir: Path, wandb_run: Any | None = None) -> None:
        self.rows: list[dict[str, Any]] = []
        self._writer = SummaryWriter(logdir=str(tensorboard_dir), flush_secs=3600)
        self._wandb_run = wandb_run

    def log(self, step: int, split: str, values: dict[str, float]) -> None:
        for metric, value in values.items():
            row = {"step": int(step), "split": split, "metric": metric, "value": float(value)}
            self.rows.append(row)
            self._writer.add_scalar(f"{split}/{metric}", row["value"], global_step=row["step"])
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

    def close(self) -> None:
        self._writer.close()


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
