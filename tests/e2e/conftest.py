"""A real ``registry serve`` process (uvicorn) on a free loopback port, on each database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
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


ServeFactory = Callable[[str], Server]


@pytest.fixture
def serve_with(engine, db_url: str, artefacts_root: Path, tmp_path: Path
               ) -> Iterator[ServeFactory]:
    """``serve_with(server_yaml)``: ``registry serve`` with that ``server:`` section against the
    test's (migrated) database; killed afterwards."""
    started: list[tuple[subprocess.Popen, object]] = []

    def _serve(server_yaml: str) -> Server:
        port = free_port()
        config = tmp_path / "podium.yaml"
        config.write_text(f"server:\n{server_yaml}")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PODIUM_")}
        env.update(PODIUM_DATABASE_URL=db_url, PODIUM_ARTEFACTS_ROOT=str(artefacts_root),
                   PODIUM_CONFIG=str(config))
        log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 (closed below)
        process = subprocess.Popen([str(BIN / "registry"), "serve", "--port", str(port),
                                    "--log-level", "warning"], env=env, stdout=log,
                                   stderr=subprocess.STDOUT, cwd=tmp_path)
        started.append((process, log))
        url = f"http://127.0.0.1:{port}"
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
        return Server(url=url, env={**env, "PODIUM_URL": url}, config=config, process=process)

    yield _serve
    for process, log in started:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


@pytest.fixture
def server(serve_with: ServeFactory) -> Server:
    """``registry serve`` against the test's (migrated) database; killed afterwards."""
    return serve_with("  public_reads: false\n")
