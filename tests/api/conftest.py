"""The API in-process (Starlette's TestClient) on each database, with a token per scope."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from registry.api import create_app
from registry.auth import create_token
from registry.config import PodiumConfig
from registry.db import write_session

API = "/api/v1"
TRACK = "equities-daily"


def make_config(db_url: str, artefacts_root: Path, **server: Any) -> PodiumConfig:
    return PodiumConfig.model_validate({"database": {"url": db_url},
                                        "artefacts_root": str(artefacts_root),
                                        "server": server})


@pytest.fixture
def tokens(engine: Engine) -> dict[str, str]:
    """A clear token per scope, named after it (the audit's actor)."""
    out = {}
    with write_session(engine) as session:
        for scope in ("read", "promote", "admin"):
            _, out[scope] = create_token(session, name=f"{scope}-bot", scope=scope)
    return out


@pytest.fixture
def auth(tokens: dict[str, str]) -> Callable[[str], dict[str, str]]:
    return lambda scope: {"Authorization": f"Bearer {tokens[scope]}"}


ClientFactory = Callable[..., TestClient]


@pytest.fixture
def make_client(engine: Engine, db_url: str, artefacts_root: Path) -> Iterator[ClientFactory]:
    """``make_client(**server_settings)``: a started app sharing the test's engine (tokens are
    not cached unless ``token_cache_ttl`` says for how long)."""
    clients: list[TestClient] = []

    def _make(*, webhook_options: dict[str, Any] | None = None, token_cache_ttl: float = 0.0,
              **server: Any) -> TestClient:
        app = create_app(make_config(db_url, artefacts_root, **server), engine=engine,
                         webhook_options=webhook_options, token_cache_ttl=token_cache_ttl)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield _make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: ClientFactory) -> TestClient:
    return make_client()


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["code"] == code, body
    assert {"type", "title", "detail", "request_id"} <= set(body)
    assert "Traceback" not in response.text
    return body
