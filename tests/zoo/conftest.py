from __future__ import annotations

import os
from pathlib import Path

import pytest

from registry import migrations
from registry.config import PodiumConfig, load_config
from registry.db import make_engine
from tests.conftest import REPO

TINY = REPO / "examples" / "tiny.yaml"


def tiny_config(db_url: str, root: Path, **changes) -> PodiumConfig:
    config = load_config(TINY, environ={"PODIUM_DATABASE_URL": db_url,
                                        "PODIUM_ARTEFACTS_ROOT": str(root)})
    return config.model_copy(update=changes) if changes else config


@pytest.fixture
def tiny(db_url: str, tmp_path: Path):
    """examples/tiny.yaml on a migrated database and a fresh artefacts root."""
    config = tiny_config(db_url, tmp_path / "artefacts")
    engine = make_engine(db_url)
    migrations.upgrade(engine)
    os.environ["WANDB_MODE"] = "disabled"
    try:
        yield config, engine
    finally:
        engine.dispose()
