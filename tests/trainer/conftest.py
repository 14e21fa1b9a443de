"""Tiny markets and bundles shared by the trainer tests (trained once per session)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.shadow.conftest import landed_panel  # noqa: F401  (the example panel, landed once)
from trainer.checksums import SUMS_NAME, write_sha256sums
from trainer.config import MarketConfig, ResolvedConfig, RunSettings, TrainConfig

TINY_MARKET = {"name": "tiny", "n_assets": 40, "n_days": 400, "initial_days": 360}
TINY_TRAIN = {
    "train_days": 200,
    "validation_days": 30,
    "epochs": 4,
    "batch_size": 512,
    "hidden_sizes": [8],
    "learning_rate": 0.01,
}


@pytest.fixture(scope="session", autouse=True)
def _wandb_disabled() -> None:
    os.environ["WANDB_MODE"] = "disabled"


@pytest.fixture(scope="session")
def tiny_market() -> MarketConfig:
    return MarketConfig(**TINY_MARKET)


@pytest.fixture(scope="session")
def datasets_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("artefacts") / "datasets"


@pytest.fixture(scope="session")
def make_config(datasets_root: Path, tiny_market: MarketConfig) -> Callable[..., ResolvedConfig]:
    """``make_config(model="mlp", seed=3)``: a resolved config on the tiny market."""

    def factory(**train_overrides: object) -> ResolvedConfig:
        train = {**TINY_TRAIN, "market": tiny_market.model_dump(), **train_overrides}
        return ResolvedConfig(
            train=TrainConfig.model_validate(train),
            run=RunSettings(datasets_root=str(datasets_root), spec_name="tiny-test"),
        )

    return factory


@pytest.fixture(scope="session")
def bundles(
    tmp_path_factory: pytest.TempPathFactory, make_config: Callable[..., ResolvedConfig]
) -> dict[str, tuple[Path, dict, ResolvedConfig]]:
    """A linear and an mlp bundle: ``{model: (bundle_dir, result, config)}``."""
    from trainer.train import train_and_evaluate

    root = tmp_path_factory.mktemp("models")
    built = {}
    for model in ("linear", "mlp"):
        config = make_config(model=model, label=f"tiny-{model}")
        result = train_and_evaluate(config, root / model)
        built[model] = (root / model, result, config)
    return built


def reseal_in_earlier_layout(bundle: Path) -> None:
    """Rewrite a bundle's checkpoint as the trainer saved it before its bundles were
    reproducible (Orbax's ``StandardCheckpointer``: OCDBT data files with random names, a
    ``_CHECKPOINT_METADATA`` with timestamps, ``commit_success.txt``), and seal it again: a
    bundle registered then, which readers must still verify and load."""
    import jax
    import numpy as np
    import orbax.checkpoint as ocp

    checkpoint = (bundle / "checkpoint").absolute()
    reader = ocp.PyTreeCheckpointer()
    as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray),
                            reader.metadata(checkpoint).item_metadata.tree)
    state = jax.tree.map(jax.numpy.asarray, reader.restore(
        checkpoint, args=ocp.args.PyTreeRestore(restore_args=as_numpy)))
    reader.close()
    shutil.rmtree(checkpoint)
    writer = ocp.StandardCheckpointer()
    writer.save(checkpoint, state)
    writer.wait_until_finished()
    writer.close()
    (bundle / SUMS_NAME).unlink()
    write_sha256sums(bundle)
