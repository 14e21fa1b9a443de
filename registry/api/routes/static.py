"""plotly.js, served from the installed plotly package (never from the internet) at
``/static/plotly.min.js``, gzipped when the client accepts it and cached for a year (the page's
URL names the plotly version)."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response

router = APIRouter(include_in_schema=False)
PLOTLY_PATH = "/static/plotly.min.js"


@dataclass(frozen=True)
class StaticAsset:
    plain: bytes
    gzipped: bytes
    etag: str


@router.get(PLOTLY_PATH)
def plotly_js(request: Request) -> Response:
    """plotly.js from the installed plotly package, cached for a year (the URL names the
    version)."""
    asset = _plotly_asset()
    headers = {"Cache-Control": "public, max-age=31536000, immutable", "ETag": asset.etag,
               "Vary": "Accept-Encoding", "X-Content-Type-Options": "nosniff"}
    sent = request.headers.get("if-none-match", "")
    if asset.etag in {tag.strip() for tag in sent.split(",")}:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", "").lower():
        return Response(asset.gzipped, media_type="text/javascript; charset=utf-8",
                        headers={**headers, "Content-Encoding": "gzip"})
    return Response(asset.plain, media_type="text/javascript; charset=utf-8", headers=headers)


def plotly_src() -> str:
    """The script URL the page uses: versioned, so a new plotly is fetched anew."""
    return f"{PLOTLY_PATH}?v={_plotly_version()}"


@functools.cache
def _plotly_asset() -> StaticAsset:
    import gzip

    from plotly.offline import get_plotlyjs

    plain = get_plotlyjs().encode("utf-8")
    return StaticAsset(plain=plain, gzipped=gzip.compress(plain, compresslevel=6, mtime=0),
                       etag='"' + hashlib.sha256(plain).hexdigest()[:32] + '"')


@functools.cache
def _plotly_version() -> str:
    from importlib import metadata

    return metadata.version("plotly")
