"""A real ``registry serve`` process (uvicorn) on a free loopback port, on each database."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.testing import RegistryServer
from tests.api.conftest import tokens  # noqa: F401  (a token per scope)
from tests.shadow.conftest import (  # noqa: F401  (the example panel, landed and trained once)
    landed_panel,
    panel_specs_trained,
)

BIN = Path(sys.executable).parent


@pytest.fixture
def server(engine, db_url: str, artefacts_root: Path, tmp_path: Path) -> Iterator[RegistryServer]:
    """``registry serve`` against the test's (migrated) database; stopped afterwards. Its
    ``env`` also names it in ``PODIUM_URL``, for the CLI commands a test runs."""
    with RegistryServer(database_url=db_url, artefacts_root=artefacts_root, workdir=tmp_path,
                        config={"server": {"public_reads": False}}) as server:
        server.env["PODIUM_URL"] = server.url
        yield server
