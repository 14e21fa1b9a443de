"""A user's panel: the three layouts, the contract's checks (each naming file, row and
problem), per-day digests, and the fingerprint of a training window."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from trainer.config import TrainConfig
from trainer.panel import PanelConfig, PanelError, read_panel
from trainer.sources import PanelSource

DAYS = [dt.date(2024, 1, 1) + dt.timedelta(days=k) for k in range(4)]


def long_frame(days=DAYS, assets=("AAA", "BBB", "CCC")) -> pd.DataFrame:
    rows = [{"date": day.isoformat(), "asset": asset, "ret": 0.01 * (k + j),
             "revision": float(j)} for k, day in enumerate(days) for j, asset in enumerate(assets)]
    return pd.DataFrame(rows)


def write_partitions(root: Path, frame: pd.DataFrame) -> Path:
    for day, rows in frame.groupby("date"):
        directory = root / f"date={day}"
        directory.mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(rows.drop(columns="date"), preserve_index=False),
                       directory / "part-0.parquet")
    return root


def panel_of(path: Path, fmt: str | None = None) -> PanelConfig:
    return PanelConfig(name="mine", path=str(path), format=fmt)


@pytest.mark.parametrize("layout", ["partitions", "parquet", "csv"])
def test_each_layout_reads_the_same_panel(tmp_path: Path, layout: str) -> None:
    frame = long_frame()
    if layout == "partitions":
        path = write_partitions(tmp_path / "panel", frame)
    elif layout == "parquet":
        path = tmp_path / "panel.parquet"
        frame.to_parquet(path)
    else:
        path = tmp_path / "panel.csv"
        frame.to_csv(path, index=False)
    panel = read_panel(panel_of(path))
    assert panel.days == DAYS and list(panel.returns.columns) == ["AAA", "BBB", "CCC"]
    assert panel.returns.loc["2024-01-02", "BBB"] == pytest.approx(0.02)
    assert list(panel.extras) == ["revision"] and panel.rows == 12
    reference = read_panel(panel_of(write_partitions(tmp_path / "ref", long_frame())))
    assert panel.digests == reference.digests  # content, not format, decides a day's digest


def test_a_day_digest_changes_with_its_content_only(tmp_path: Path) -> None:
    frame = long_frame()
    before = read_panel(panel_of(write_partitions(tmp_path / "a", frame))).digests
    frame.loc[4, "ret"] = 0.5  # a row of the second day
    after = read_panel(panel_of(write_partitions(tmp_path / "b", frame))).digests
    assert [day for day in DAYS if before[day] != after[day]] == [DAYS[1]]


def csv_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "panel.csv"
    path.write_text(text)
    with pytest.raises(PanelError) as caught:
        read_panel(panel_of(path))
    return str(caught.value)


@pytest.mark.parametrize(("text", "problem"), [
    ("date,asset\n2024-01-01,AAA\n", "missing column(s) ret"),
    ("", "the file is empty"),
    ("date,asset,ret\n", "the file is empty (no rows)"),
    ("date,asset,ret\n2024-01-01,AAA,0.1\n2024-01-01,AAA,0.2\n",
     "line 3: duplicate (date, asset) (2024-01-01, AAA)"),
    ("date,asset,ret\n2024-01-01,AAA,0.1\n2024-01-01,BBB,abc\n",
     "line 3: ret 'abc' is not a number"),
    ("date,asset,ret\n2024-01-01,AAA,inf\n", "line 2: ret is inf; a return must be a finite"),
    ("date,asset,ret\n2024-01-01,AAA,0.1\nyesterday,BBB,0.1\n",
     "line 3: date 'yesterday' is not a date"),
    ("date,asset,ret\n2024-01-02,AAA,0.1\n2024-01-01,AAA,0.1\n",
     "line 3: date 2024-01-01 comes after 2024-01-02; rows must be in date order"),
    ("date,asset,ret\n2024-01-01,,0.1\n", "line 2: asset is empty"),
])
def test_bad_csv_names_the_file_the_line_and_the_problem(tmp_path: Path, text: str,
                                                         problem: str) -> None:
    message = csv_error(tmp_path, text)
    assert message.startswith(str(tmp_path / "panel.csv")) and problem in message


def test_bad_partitions_name_the_partition_file_and_row(tmp_path: Path) -> None:
    frame = long_frame()
    frame.loc[7, "ret"] = np.nan  # third day, second asset
    root = write_partitions(tmp_path / "panel", frame)
    with pytest.raises(PanelError, match=r"date=2024-01-03/part-0.parquet: row 2: ret is nan"):
        read_panel(panel_of(root))


def test_a_partition_name_that_is_not_a_date_is_named(tmp_path: Path) -> None:
    root = write_partitions(tmp_path / "panel", long_frame())
    (root / "date=2024-13-01").mkdir()
    with pytest.raises(PanelError, match=r"date=2024-13-01: partition name is not"):
        read_panel(panel_of(root))


def test_a_partition_whose_date_column_disagrees_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "panel" / "date=2024-01-01"
    root.mkdir(parents=True)
    pq.write_table(pa.table({"date": ["2024-01-02"], "asset": ["AAA"], "ret": [0.1]}),
                   root / "part-0.parquet")
    with pytest.raises(PanelError, match="row 1: date 2024-01-02 is not the partition's day"):
        read_panel(panel_of(root.parent))


def test_a_missing_panel_and_an_unreadable_file_are_named(tmp_path: Path) -> None:
    with pytest.raises(PanelError, match="the panel does not exist"):
        read_panel(panel_of(tmp_path / "nowhere"))
    broken = tmp_path / "panel.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(PanelError, match="panel.parquet: not a readable Parquet file"):
        read_panel(panel_of(broken))


def test_the_fingerprint_covers_the_training_window_only(tmp_path: Path) -> None:
    """Same window content: same fingerprint (wherever the files are); a change inside the
    window changes it; a change before the window does not."""
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=k) for k in range(200)]
    frame = long_frame(days, assets=tuple(f"A{k:02d}" for k in range(12)))
    train = TrainConfig(train_days=40, validation_days=10)
    cutoff = days[-1]

    def fingerprint(name: str, change_row: int | None = None) -> str:
        changed = frame.copy()
        if change_row is not None:
            changed.loc[change_row, "ret"] += 0.001
        path = tmp_path / f"{name}.parquet"
        changed.to_parquet(path)
        return PanelSource(panel_of(path)).fingerprint(cutoff, train)

    same = fingerprint("a")
    assert fingerprint("b") == same
    assert fingerprint("inside", change_row=len(frame) - 1) != same
    assert fingerprint("before", change_row=0) == same  # day 0 is before the window


def test_the_documented_example_file_reads() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "own-data" / "panel-example.csv"
    panel = read_panel(panel_of(example))
    assert panel.rows == 5 and list(panel.extras) == ["analyst_revision"]
    assert np.isnan(panel.returns.loc["2024-01-02", "NVDA"])  # listed on the second day
