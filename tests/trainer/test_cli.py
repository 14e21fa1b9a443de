"""The subprocess contract: one JSON line on stdout, logs on stderr, meaningful exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from trainer.checksums import sums_digest, verify_sha256sums
from trainer.compilation_cache import ENV
from trainer.config import ResolvedConfig
from trainer.train import train_and_evaluate


def _run(config_file: Path, out: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainer", "--config-file", str(config_file), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


@pytest.mark.slow
def test_success_prints_one_json_line_and_writes_offline_wandb_files_outside(
    make_config: Callable[..., ResolvedConfig], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV, raising=False)  # the cache's default place, checked below
    config_file = tmp_path / "resolved.json"
    config_file.write_text(make_config(model="mlp").model_dump_json())
    wandb_dir = tmp_path / "wandb-runs"
    proc = _run(config_file, tmp_path / "bundle", WANDB_MODE="offline", WANDB_DIR=str(wandb_dir))
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout
    result = json.loads(lines[0])
    assert result["status"] == "ok"
    for key in (
        "val_loss",
        "val_rank_ic",
        "steps_completed",
        "wall_time_seconds",
        "device_used",
        "model_params",
        "train_cutoff",
        "dataset_fingerprint",
    ):
        assert key in result
    assert result["steps_completed"] > 0 and result["model_params"] > 0
    verify_sha256sums(tmp_path / "bundle")
    # another process, another directory, W&B on: the same bundle as one trained here
    train_and_evaluate(make_config(model="mlp"), tmp_path / "here")
    assert sums_digest(tmp_path / "here") == sums_digest(tmp_path / "bundle")
    runs = list(wandb_dir.rglob("offline-run-*"))
    assert runs, "W&B offline run files were not written"
    assert not list((tmp_path / "bundle").rglob("*wandb*"))
    cache = Path(make_config().run.datasets_root).parent / "cache" / "jax"  # beside, not inside
    assert any(cache.iterdir()), "the compiled programs were not cached for the next run"
    assert not list((tmp_path / "bundle").rglob("*cache*"))


def test_bad_config_answers_one_error_line_naming_the_field(tmp_path: Path) -> None:
    config_file = tmp_path / "bad.json"
    config_file.write_text(
        json.dumps({"train": {"forward_days": 0}, "run": {"datasets_root": str(tmp_path)}})
    )
    proc = _run(config_file, tmp_path / "bundle")
    assert proc.returncode == 2
    lines = proc.stdout.splitlines()
    assert len(lines) == 1
    error = json.loads(lines[0])
    assert error["status"] == "error"
    assert "train.forward_days" in error["message"]
    assert "Traceback" not in proc.stdout
    assert not (tmp_path / "bundle").exists()


def test_unreadable_config_and_non_empty_out_are_refused(tmp_path: Path) -> None:
    proc = _run(tmp_path / "missing.json", tmp_path / "bundle")
    assert proc.returncode == 2
    assert "cannot read --config-file" in json.loads(proc.stdout)["message"]

    config_file = tmp_path / "ok.json"
    config_file.write_text(json.dumps({"train": {}, "run": {"datasets_root": str(tmp_path)}}))
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    proc = _run(config_file, out)
    assert proc.returncode == 2
    assert "refusing to overwrite" in json.loads(proc.stdout)["message"]
    assert (out / "keep.txt").read_text() == "precious"


@pytest.mark.slow
def test_a_budget_spent_before_any_epoch_still_answers_strict_json(
    make_config: Callable[..., ResolvedConfig], tmp_path: Path
) -> None:
    config_file = tmp_path / "resolved.json"
    config_file.write_text(make_config(time_budget_seconds=0.001).model_dump_json())
    proc = _run(config_file, tmp_path / "bundle")
    assert proc.returncode == 0, proc.stderr[-2000:]
    def strict(text: str) -> dict:
        return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))

    result = strict(proc.stdout)
    assert result["stopped_early"] == "time_budget"
    assert result["train_loss"] is None
    metadata = strict((tmp_path / "bundle" / "metadata.json").read_text())
    assert metadata["metrics"]["train_loss"] is None
    for line in (tmp_path / "bundle" / "metrics.jsonl").read_text().splitlines():
        strict(line)
