"""A real ``registry serve`` process (uvicorn) on a free loopback port, on each database."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import tokens  # noqa: F401  (a token per scope)

BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Server:
    url: str
    env: dict[str, str]
    config: Path
    process: subprocess.Popen


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def server(engine, db_url: str, artefacts_root: Path, tmp_path: Path) -> Iterator[Server]:
    """``registry serve`` against the test's (migrated) database; killed afterwards."""
    with running_server(db_url, artefacts_root, tmp_path, "server:\n  public_reads: false\n"
                        ) as started:
        yield started


@contextlib.contextmanager
def running_server(db_url: str, artefacts_root: Path, tmp_path: Path, config_text: str
                   ) -> Iterator[Server]:
    """``registry serve`` with ``config_text`` as its configuration file."""
    port = free_port()
    config = tmp_path / "podium.yaml"
    config.write_text(config_text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODIUM_")}
    env.update(PODIUM_DATABASE_URL=db_url, PODIUM_ARTEFACTS_ROOT=str(artefacts_root),
               PODIUM_CONFIG=str(config))
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen([str(BIN / "registry"), "serve", "--port", str(port),
                                "--log-level", "warning"], env=env, stdout=log,
                               stderr=subprocess.STDOUT, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise AssertionError("registry serve exited: "
                                     + (tmp_path / "server.log").read_text()[-2000:])
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("registry serve did not become healthy in 30 s")
            time.sleep(0.05)
        yield Server(url=url, env={**env, "PODIUM_URL": url}, config=config, process=process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
