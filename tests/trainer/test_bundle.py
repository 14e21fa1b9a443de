"""The sealed bundle: contents, checksums, and reloading to the same predictions."""

from __future__ import annotations

import csv
import json
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np
import pytest
import yaml
from flax import nnx

from tests.trainer.conftest import reseal_in_earlier_layout
from trainer import TRAINER_CODE_VERSION, load_model
from trainer.bundle import discard_staging, prepare_staging
from trainer.checksums import (
    IntegrityError,
    read_sha256sums,
    sums_digest,
    verified_digest,
    verify_sha256sums,
)
from trainer.config import ResolvedConfig
from trainer.dataset import open_feed
from trainer.train import fit, train_and_evaluate
from trainer.window import build_training_data

EXPECTED_TOP_LEVEL = {
    "checkpoint",
    "metadata.json",
    "metrics.jsonl",
    "metrics.csv",
    "summary.yaml",
    "tensorboard",
    "SHA256SUMS",
}


@pytest.mark.parametrize("model", ["linear", "mlp"])
def test_bundle_holds_exactly_the_designed_files(bundles: dict, model: str) -> None:
    bundle, result, config = bundles[model]
    assert {p.name for p in bundle.iterdir()} == EXPECTED_TOP_LEVEL
    assert not list(bundle.parent.glob(".*partial*"))  # the staging directory was renamed
    listed = read_sha256sums(bundle)
    assert "metadata.json" in listed and any(p.startswith("checkpoint/") for p in listed)
    assert any(p.startswith("tensorboard/events.out.tfevents") for p in listed)
    verify_sha256sums(bundle)

    metadata = json.loads((bundle / "metadata.json").read_text())
    # where it ran (the datasets root) is not what it is: a reproducible bundle leaves it out
    assert metadata["resolved_config"] == config.model_dump(
        mode="json", exclude={"run": {"datasets_root"}})
    assert not {"created_at", "training_seconds"} & set(metadata)
    assert "path" not in metadata["dataset"]
    assert metadata["spec_name"] == "tiny-test"
    assert metadata["dataset"]["fingerprint"] == result["dataset_fingerprint"]
    assert metadata["seeds"] == {"train": 0, "market": config.train.market.seed}
    assert metadata["code"]["trainer_code_version"] == TRAINER_CODE_VERSION
    assert {"python", "jax", "flax", "devices"} <= set(metadata["environment"])
    assert metadata["architecture"]["model"] == model
    assert metadata["architecture"]["params"] == result["model_params"]
    assert metadata["feature_names"][0] == "ret_1d"
    assert metadata["training_window"]["train_cutoff"] == result["train_cutoff"]

    rows = [json.loads(line) for line in (bundle / "metrics.jsonl").read_text().splitlines()]
    assert rows and all(set(row) == {"step", "split", "metric", "value"} for row in rows)
    assert {("val", "rank_ic"), ("val", "loss"), ("train", "loss")} <= {
        (row["split"], row["metric"]) for row in rows
    }
    with open(bundle / "metrics.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == len(rows)

    summary = yaml.safe_load((bundle / "summary.yaml").read_text())
    assert summary["best"]["val_loss"] == pytest.approx(result["val_loss"])
    assert summary["early_stopping_step"] == result["best_step"]
    assert summary["steps_completed"] == result["steps_completed"]
    assert result["training_seconds"] >= 0  # timings are in the result line, not the bundle


def test_the_same_run_seals_the_same_bytes_and_another_seed_does_not(
    bundles: dict, make_config: Callable[..., ResolvedConfig], tmp_path: Path
) -> None:
    bundle, _, config = bundles["mlp"]
    again = tmp_path / "again"
    elsewhere = config.run.model_copy(update={"datasets_root": str(tmp_path / "datasets")})
    train_and_evaluate(config.model_copy(update={"run": elsewhere}), again)  # data made anew
    # every file the same, so SHA256SUMS, and the digest the registry keeps, are the same
    assert (again / "SHA256SUMS").read_text() == (bundle / "SHA256SUMS").read_text()
    assert sums_digest(again) == sums_digest(bundle)
    reseeded = tmp_path / "reseeded"
    train_and_evaluate(make_config(model="mlp", label="tiny-mlp", seed=1), reseeded)
    assert sums_digest(reseeded) != sums_digest(bundle)
    differing = {rel for rel, digest in read_sha256sums(reseeded).items()
                 if read_sha256sums(bundle).get(rel) != digest}
    assert "checkpoint/model.head.kernel.value/0.0" in differing  # other weights


def test_a_bundle_sealed_in_the_earlier_layout_still_verifies_and_loads(
    bundles: dict, tmp_path: Path
) -> None:
    bundle = tmp_path / "earlier"
    shutil.copytree(bundles["mlp"][0], bundle)
    reseal_in_earlier_layout(bundle)
    assert (bundle / "checkpoint" / "manifest.ocdbt").is_file()
    assert (bundle / "checkpoint" / "_CHECKPOINT_METADATA").is_file()
    verify_sha256sums(bundle)
    earlier = load_model(bundle, expected_digest=sums_digest(bundle))
    current = load_model(bundles["mlp"][0])
    for old, new in zip(jax.tree.leaves(nnx.state(earlier.model, nnx.Param)),
                        jax.tree.leaves(nnx.state(current.model, nnx.Param)), strict=True):
        np.testing.assert_array_equal(np.asarray(old), np.asarray(new))


@pytest.mark.parametrize("model", ["linear", "mlp"])
def test_reload_gives_the_predictions_from_before_saving(bundles: dict, model: str) -> None:
    bundle, _, config = bundles[model]
    feed = open_feed(config.run.datasets_root, config.train.market)
    returns = feed.returns()
    data = build_training_data(returns, config.train)
    # training is deterministic, so refitting gives the very model that was saved
    fitted = fit(config.train, data, _Silent(), deadline=time.monotonic() + 600)
    before = np.asarray(fitted.model(data.x_val))

    predictor = load_model(bundle)
    restored = jax.tree.leaves(nnx.state(predictor.model, nnx.Param))
    for saved, reloaded in zip(
        jax.tree.leaves(nnx.state(fitted.model, nnx.Param)), restored, strict=True
    ):
        np.testing.assert_array_equal(np.asarray(reloaded), np.asarray(saved))
    # jitted vs eager evaluation of the same weights: equal up to float32 rounding
    np.testing.assert_allclose(predictor.predict(data.x_val), before, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(predictor.predict(data.x_val[3]), before[3], rtol=1e-5, atol=1e-6)

    scored = predictor.score_days(returns, returns.index[-4:])
    features = predictor.features(returns)[-4:]
    np.testing.assert_allclose(scored.to_numpy(), predictor.predict(features), rtol=1e-6)
    assert list(scored.columns) == list(returns.columns)
    with pytest.raises(ValueError, match="features must be"):
        predictor.predict(np.zeros((5, 2)))


def test_a_flipped_byte_is_refused(bundles: dict, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(bundles["linear"][0], copy)
    victim = next(
        p for p in sorted((copy / "checkpoint").rglob("*")) if p.is_file() and p.stat().st_size > 0
    )
    load_model(copy)  # restored once and cached: the cache must not hide a later corruption
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="checksum mismatch"):
        load_model(copy)


def test_a_bundle_is_loaded_only_under_the_digest_it_was_registered_with(bundles: dict) -> None:
    linear, mlp = bundles["linear"][0], bundles["mlp"][0]
    digest = verified_digest(linear)
    assert digest == sums_digest(linear) != sums_digest(mlp)
    assert load_model(linear, expected_digest=digest).feature_names
    with pytest.raises(IntegrityError, match="differs from the one registered"):
        load_model(linear, expected_digest=sums_digest(mlp))


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("../outside", "path escapes the bundle"),
        ("checkpoint/../../outside", "path escapes the bundle"),
        ("/etc/passwd", "path escapes the bundle"),
        ("metadata.json extra", None),  # a name with a space is a name, and is not in the bundle
    ],
)
def test_a_sums_file_naming_paths_outside_the_bundle_is_refused(
    bundles: dict, tmp_path: Path, line: str, error: str | None
) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(bundles["linear"][0], copy)
    sums = copy / "SHA256SUMS"
    sums.write_text(sums.read_text() + f"{'0' * 64}  {line}\n")
    with pytest.raises(IntegrityError, match=error or "listed in SHA256SUMS but missing"):
        verify_sha256sums(copy)
    if error:
        with pytest.raises(IntegrityError, match=error):
            read_sha256sums(copy)


class _Silent:
    def log(self, step: int, split: str, values: dict) -> None:
        pass


def test_a_failed_staging_is_swept_again_after_a_late_write(tmp_path: Path) -> None:
    """A write still in flight when the run failed (TensorStore finishing a leaf) lands after
    the first sweep and re-creates its directory: the later sweep removes it too."""
    staging = prepare_staging(tmp_path / "bundle")
    (staging / "checkpoint" / "model").mkdir(parents=True)
    landed = threading.Event()

    def late_write() -> None:
        deadline = time.monotonic() + 30
        while staging.exists() and time.monotonic() < deadline:
            time.sleep(0.001)
        (staging / "checkpoint" / "model" / "leaf").mkdir(parents=True)  # after the first sweep
        landed.set()

    writer = threading.Thread(target=late_write)
    writer.start()
    discard_staging(staging)
    writer.join()
    assert landed.is_set()
    assert list(tmp_path.iterdir()) == []
