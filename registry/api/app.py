"""The app factory: ``create_app(config)`` builds the whole service; nothing happens at import.

Background work hangs off the app's lifespan. The webhook dispatcher starts there when webhooks
are configured; other jobs (the scheduled shadow job) are passed as ``background`` starters:
each is called with the app once the server starts (``app.state.engine`` and
``app.state.config`` are ready) and returns a function that stops it, called at shutdown in
reverse order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy import Engine

from registry.api.middleware import (
    AllowedHostsMiddleware,
    BodyLimitMiddleware,
    RequestContextMiddleware,
    cors_kwargs,
)
from registry.api.problems import install_problem_handlers
from registry.api.routes import (
    events,
    external,
    health,
    page,
    signin,
    static,
    track_list_page,
    tracks,
    version_page,
    versions,
    webhooks,
)
from registry.api.routes.docs import OPENAPI_URL, install_docs
from registry.api.webhooks import WebhookDispatcher
from registry.auth import FailedAuthLog, TokenCache
from registry.config import PodiumConfig
from registry.db import make_engine

API_PREFIX = "/api/v1"
BackgroundStarter = Callable[[FastAPI], Callable[[], None]]


def create_app(config: PodiumConfig, *, engine: Engine | None = None,
               background: Sequence[BackgroundStarter] = (),
               webhook_options: dict[str, Any] | None = None,
               token_cache_ttl: float = 5.0) -> FastAPI:
    """The Podium service for ``config``. Pass ``engine`` to share one (tests); else it is made
    here and disposed of at shutdown."""
    owns_engine = engine is None
    engine = engine if engine is not None else make_engine(
        config.database.url, pool_timeout_s=config.database.pool_timeout_s)
    dispatcher = (WebhookDispatcher(engine, config.server.webhooks,
                                    allow_private=config.server.webhooks_allow_private,
                                    **(webhook_options or {}))
                  if config.server.webhooks else None)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stoppers: list[Callable[[], None]] = []
        try:
            if dispatcher is not None:
                dispatcher.start()
                stoppers.append(dispatcher.stop)
            for start in background:
                stoppers.append(start(app))
            yield
        finally:
            for stop in reversed(stoppers):
                stop()
            if owns_engine:
                engine.dispose()

    app = FastAPI(title="Podium", version="1", lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url=OPENAPI_URL,
                  description="Champion/challenger model registry: resolve champions, promote "
                  "through the gate, audit every transition.")
    app.state.config = config
    app.state.engine = engine
    app.state.token_cache = TokenCache(ttl=token_cache_ttl)
    app.state.token_lookups = {}  # token digest -> its lookup in progress (bearer.caller)
    app.state.failed_auth = FailedAuthLog()
    app.state.dispatcher = dispatcher
    app.state.notify_events = dispatcher.notify if dispatcher is not None else _nothing
    install_problem_handlers(app)
    # Routes are matched in order: the consumers' champion endpoint (in tracks) comes first,
    # then the leaderboard page (its one path, "/", never shadows another), then the rest.
    # external before versions: its GET /versions/{id}/predictions would match versions' last
    # route, GET /versions/{version_id:path}, otherwise
    app.include_router(tracks.router, prefix=API_PREFIX)
    app.include_router(page.router)
    for router in (health.router, external.router, versions.router, events.router,
                   webhooks.router):
        app.include_router(router, prefix=API_PREFIX)
    for router in (version_page.router, track_list_page.router, signin.router,
                   static.router):  # the other pages, outside the API
        app.include_router(router)
    install_docs(app)  # Swagger UI at /docs, ReDoc at /redoc, their assets from a package
    if config.server.cors_origins:
        app.add_middleware(CORSMiddleware, **cors_kwargs(config.server.cors_origins))
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.server.max_body_bytes)
    app.add_middleware(AllowedHostsMiddleware, allowed=config.server.hosts_allowed)
    app.add_middleware(RequestContextMiddleware)  # outermost: every answer has a request id
    return app


def _nothing() -> None:
    return None
