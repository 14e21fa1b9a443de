"""Metrics go to the bundle's tables, TensorBoard and W&B: the same points, as they come."""

from __future__ import annotations

import datetime as dt
import struct
import time
from pathlib import Path

from tensorboardX.proto import event_pb2

from trainer.tracking import MetricsLog

CUTOFF = dt.date(2025, 6, 30)
MIDNIGHT = dt.datetime(2025, 6, 30, tzinfo=dt.UTC).timestamp()  # of the cutoff, in UTC


def scalars(directory: Path) -> list[tuple[str, int, float, float]]:
    """``(tag, step, value, wall time)`` of every scalar in the TFRecord event files."""
    points = []
    for path in sorted(directory.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack_from("<Q", data, offset)
            event = event_pb2.Event.FromString(data[offset + 12 : offset + 12 + length])
            offset += 12 + length + 4  # length, its CRC, the record, its CRC
            for value in event.summary.value:
                points.append((value.tag, event.step, value.simple_value, event.wall_time))
    return points


class Recorder:
    """Stands in for a W&B run (its cloud is out of reach here): records what is logged."""

    def __init__(self) -> None:
        self.logged: list[tuple[int, dict]] = []

    def log(self, values: dict, step: int) -> None:
        self.logged.append((step, values))


def test_points_reach_tensorboard_and_wandb_as_they_are_logged(tmp_path) -> None:
    wandb_run = Recorder()
    metrics = MetricsLog(tmp_path / "tb", wandb_run, stamp=CUTOFF)
    metrics.log(75, "train", {"loss": 0.5, "epoch": 1})
    time.sleep(0.05)
    metrics.log(75, "val", {"loss": 0.25})
    assert len(wandb_run.logged) == 2  # live, not at the end
    metrics.close()
    points = scalars(tmp_path / "tb")
    assert [(tag, step, value) for tag, step, value, _ in points] == [
        ("train/loss", 75, 0.5), ("train/epoch", 75, 1.0), ("val/loss", 75, 0.25)]
    # stamped with the cutoff, not the clock: the file is part of a reproducible bundle
    assert {wall_time for *_, wall_time in points} == {MIDNIGHT}
    assert wandb_run.logged == [(75, {"train/loss": 0.5, "train/epoch": 1.0}),
                                (75, {"val/loss": 0.25})]
    assert metrics.rows[2] == {"step": 75, "split": "val", "metric": "loss", "value": 0.25}


def test_tensorboard_is_written_while_training_runs(tmp_path, monkeypatch) -> None:
    """Points reach the event file in batches as training goes, not only at the end."""
    monkeypatch.setattr("trainer.tracking.TENSORBOARD_WRITE_SECONDS", 0.0)
    metrics = MetricsLog(tmp_path / "tb", stamp=CUTOFF)
    metrics.log(10, "train", {"loss": 0.75})
    assert [tag for tag, *_ in scalars(tmp_path / "tb")] == ["train/loss"]
    metrics.log(20, "train", {"loss": float("nan")})
    metrics.close()
    points = scalars(tmp_path / "tb")
    assert [(tag, step) for tag, step, *_ in points] == [("train/loss", 10), ("train/loss", 20)]
    assert points[1][2] != points[1][2]  # NaN is kept, as TensorBoard shows it


def test_the_same_points_write_the_same_file_whenever_and_wherever(tmp_path) -> None:
    files = []
    for run in ("first", "second"):
        metrics = MetricsLog(tmp_path / run, stamp=CUTOFF)
        metrics.log(10, "train", {"loss": 0.75})
        time.sleep(0.01)
        metrics.log(20, "val", {"loss": 0.5})
        metrics.close()
        [path] = (tmp_path / run).iterdir()
        files.append((path.name, path.read_bytes()))
    assert files[0] == files[1]
    assert files[0][0] == f"events.out.tfevents.{int(MIDNIGHT)}.podium"
