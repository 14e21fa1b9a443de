"""The pages' scripts: plotly.js from the installed plotly package (never from the internet) at
``/static/plotly.min.js``, and the few lines that draw the charts at ``/static/charts.js``;
gzipped when the client accepts it and cached for a year (the URLs name their versions)."""

from __future__ import annotations

import functools
from importlib import resources

from fastapi import APIRouter, Request, Response

from registry.api.encoded import EncodedBody, encoded_response

router = APIRouter(include_in_schema=False)
PLOTLY_PATH = "/static/plotly.min.js"
CHARTS_PATH = "/static/charts.js"
_SCRIPT_HEADERS = {"Cache-Control": "public, max-age=31536000, immutable",
                   "X-Content-Type-Options": "nosniff"}
_JAVASCRIPT = "text/javascript; charset=utf-8"


@router.get(PLOTLY_PATH)
def plotly_js(request: Request) -> Response:
    """plotly.js from the installed plotly package, cached for a year (the URL names the
    version)."""
    return encoded_response(request, _plotly_asset(), media_type=_JAVASCRIPT,
                            headers=_SCRIPT_HEADERS)


@router.get(CHARTS_PATH)
def charts_js(request: Request) -> Response:
    """The pages' chart drawing (a file, not an inline script: the pages are served as stored
    bytes, so they carry no per-response nonce)."""
    return encoded_response(request, _charts_asset(), media_type=_JAVASCRIPT,
                            headers=_SCRIPT_HEADERS)


def plotly_src() -> str:
    """The script URL the page uses: versioned, so a new plotly is fetched anew."""
    return f"{PLOTLY_PATH}?v={_plotly_version()}"


def charts_src() -> str:
    """The chart script's URL, named by its content."""
    return f"{CHARTS_PATH}?v={_charts_asset().etag.strip(chr(34))[:12]}"


@functools.cache
def _plotly_asset() -> EncodedBody:
    from plotly.offline import get_plotlyjs

    return EncodedBody.of(get_plotlyjs().encode("utf-8"))


@functools.cache
def _charts_asset() -> EncodedBody:
    return EncodedBody.of(resources.files("registry.api").joinpath("static/charts.js")
                          .read_bytes())


@functools.cache
def _plotly_version() -> str:
    from importlib import metadata

    return metadata.version("plotly")
