"""A seeded Podium for hostile-input tests: a migrated SQLite file, real bundles, a token per scope.

The track has a history (a retired version, a champion that displaced it, two challengers, one
of them under the id the API documents as its example), events and a webhook delivery, so that
fuzzed requests reach real rows and not only 404s. Everything lives under one temporary
``root``; ``outside`` is a sentinel directory next to the artefacts root that no request may
touch (see ``snapshot``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from registry import migrations, promotion
from registry.api import create_app
from registry.auth import create_token
from registry.config import PodiumConfig
from registry.db import make_engine, write_session
from registry.models import WebhookDelivery, utcnow
from registry.testing import register_stand_in

API = "/api/v1"
TRACK = "equities-daily"
SCOPES = ("read", "promote", "admin")
EXAMPLE_VERSION_ID = "v3.1-resmom-20250630-3fa2c1de"  # the id the OpenAPI shows as an example


@dataclass
class Deployment:
    root: Path
    artefacts_root: Path
    outside: Path
    engine: Engine
    app: FastAPI
    tokens: dict[str, str]
    versions: dict[str, str] = field(default_factory=dict)

    def auth(self, scope: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[scope]}"} if scope else {}


def snapshot(path: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every entry under ``path`` with its mode, size and (for files) its bytes."""
    entries: dict[str, tuple[int, int, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            info = full.lstat()
            data = full.read_bytes() if full.is_file() and not full.is_symlink() else b""
            entries[full.relative_to(path).as_posix()] = (info.st_mode, info.st_size, data)
    return entries


def _register(engine: Engine, artefacts_root: Path, label: str, *, seed: str,
              fingerprint: str | None = None) -> str:
    return register_stand_in(engine, artefacts_root, label, track=TRACK, actor="seed",
                             seed=seed, fingerprint=fingerprint)


def _force(engine: Engine, artefacts_root: Path, version_id: str) -> None:
    with write_session(engine) as session:
        promotion.promote_version(session, version_id=version_id, actor="seed", reason="seed",
                                  gate=None, artefacts_root=artefacts_root, force=True)


def deploy(root: Path, *, url: str | None = None, **server: object) -> Deployment:
    """Build the seeded deployment under ``root`` on ``url`` (default: a SQLite file there);
    ``server`` settings go to the config."""
    artefacts_root, outside = root / "artefacts", root / "outside"
    artefacts_root.mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text("must never be read, written or listed\n")
    url = url or f"sqlite:///{root / 'podium.db'}"
    engine = make_engine(url)
    migrations.upgrade(engine)
    versions = {
        "retired": _register(engine, artefacts_root, "v1-linear", seed="a"),
        "champion": _register(engine, artefacts_root, "v2-mlp", seed="b"),
        "challenger": _register(engine, artefacts_root, "v3-mlp", seed="c"),
        "example": _register(engine, artefacts_root, "v3.1-resmom", seed="d",
                             fingerprint="3fa2c1de" + "0" * 56),
    }
    assert versions["example"] == EXAMPLE_VERSION_ID
    _force(engine, artefacts_root, versions["retired"])
    _force(engine, artefacts_root, versions["champion"])
    tokens: dict[str, str] = {}
    with write_session(engine) as session:
        for scope in SCOPES:
            _, tokens[scope] = create_token(session, name=f"{scope}-bot", scope=scope)
        session.add(WebhookDelivery(event_id=1, url="https://hooks.example/podium",
                                    state="failed", attempts=3, last_status=500,
                                    last_error="HTTP 500", next_attempt_at=utcnow()))
        session.commit()
    config = PodiumConfig.model_validate({"database": {"url": url},
                                          "artefacts_root": str(artefacts_root),
                                          "server": server})
    app = create_app(config, engine=engine, token_cache_ttl=0.0)
    return Deployment(root=root, artefacts_root=artefacts_root, outside=outside, engine=engine,
                      app=app, tokens=tokens, versions=versions)


@pytest.fixture
def podium(db_url: str, tmp_path: Path) -> Iterator[Deployment]:
    """The seeded deployment on each database (SQLite, and PostgreSQL where reachable)."""
    deployment = deploy(tmp_path / "podium", url=db_url)
    try:
        yield deployment
    finally:
        deployment.engine.dispose()
