"""The API's documentation pages, offline: Swagger UI at ``/docs`` and ReDoc at ``/redoc``.

Their scripts and styles come from the installed ``fastapi-offline`` package (served under
``/static/docs/``, gzipped when the browser accepts it), never from a CDN, so the pages work on
a machine without internet. Each page starts its viewer from one script carrying a per-response
nonce, under a Content-Security-Policy as strict as the viewers allow: scripts only from this
server or with the nonce, requests only to this server, ReDoc's search worker from a ``blob:``.
"""

from __future__ import annotations

import functools
import html
import json
import secrets
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from starlette.middleware.gzip import GZipMiddleware
from starlette.staticfiles import StaticFiles

router = APIRouter(include_in_schema=False)
ASSETS_PATH = "/static/docs"
OPENAPI_URL = "/openapi.json"

_SWAGGER_BODY = """<link rel="stylesheet" href="{assets}/swagger-ui.css?v={version}">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js?v={version}"></script>
<script nonce="{nonce}">
window.ui = SwaggerUIBundle({{
  url: {openapi}, dom_id: "#swagger-ui", deepLinking: true, layout: "BaseLayout",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  showExtensions: true, showCommonExtensions: true
}});
</script>
"""

_REDOC_BODY = """<style nonce="{nonce}">body {{ margin: 0; padding: 0; }}</style>
</head>
<body>
<div id="redoc"></div>
<script src="{assets}/redoc.standalone.js?v={version}"></script>
<script nonce="{nonce}">Redoc.init({openapi}, {{}}, document.getElementById("redoc"));</script>
"""


def install_docs(app: FastAPI) -> None:
    """Add ``/docs``, ``/redoc`` and their assets to ``app`` (built with ``docs_url=None``)."""
    app.include_router(router)
    app.mount(ASSETS_PATH, GZipMiddleware(StaticFiles(directory=_assets_dir())),
              name="docs-assets")


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui() -> HTMLResponse:
    """Swagger UI: every operation, with "try it out" against this server."""
    return _docs_page("Swagger UI", _SWAGGER_BODY)


@router.get("/redoc", response_class=HTMLResponse)
def redoc() -> HTMLResponse:
    """ReDoc: the same API as one readable page."""
    return _docs_page("ReDoc", _REDOC_BODY)


def _docs_page(viewer: str, body: str) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    head = ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>Podium API · {html.escape(viewer)}</title>\n"
            f'<link rel="icon" href="{ASSETS_PATH}/favicon.png">\n')
    page = head + body.format(assets=ASSETS_PATH, version=_assets_version(), nonce=nonce,
                              openapi=json.dumps(OPENAPI_URL)) + "</body>\n</html>\n"
    return HTMLResponse(page, headers={
        "Cache-Control": "no-store",
        "Content-Security-Policy": (
            f"default-src 'none'; script-src 'self' 'nonce-{nonce}'; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
            "connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; "
            "base-uri 'none'; form-action 'self'"),
        "Referrer-Policy": "same-origin",
        "X-Content-Type-Options": "nosniff",
    })


@functools.cache
def _assets_dir() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


@functools.cache
def _assets_version() -> str:
    from importlib import metadata

    return metadata.version("fastapi-offline")
