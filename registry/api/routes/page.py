"""The leaderboard page at ``GET /``: server-rendered HTML and one plotly chart per track.

The page shows what ``GET /api/v1/tracks/{track}/leaderboard`` shows, so it obeys the same read
rule. With ``server.public_reads`` on it is open. Otherwise the caller needs a token (any scope,
since read ⊂ promote ⊂ admin): an ``Authorization: Bearer`` header, as on the API, or the
``podium_token`` cookie that the page's sign-in form sets (``POST /sign-in``; HttpOnly,
SameSite=Strict, Secure over HTTPS). The cookie is read here and nowhere else, so it can never
authorise an API write. The token travels only in a POST body or the cookie: never in a URL, a
log line or a page.

Jinja2, plotly and the leaderboard's maths (pandas, scipy) are imported on first use, so
``registry serve`` starts and idles without them. plotly.js is served from the installed plotly
package (``/static/plotly.min.js``), never from the internet.
"""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from registry import store
from registry.auth import (
    ANONYMOUS,
    MAX_TOKEN_CHARS,
    Principal,
    TokenCache,
    authenticate,
    require_scope,
)
from registry.db import read_session
from registry.errors import NotFound, PodiumError, Unauthorized
from registry.ids import validate_slug

router = APIRouter(include_in_schema=False)
COOKIE = "podium_token"
COOKIE_MAX_AGE = 8 * 3600  # a working day; a revoked token stops working at once anyway
MAX_FORM_BYTES = 4096
PLOTLY_PATH = "/static/plotly.min.js"
CHAMPION_COLOUR = "#0969da"  # as the champion's row in the table


# --------------------------------------------------------------------------- the page


@router.get("/", response_class=HTMLResponse)
def leaderboard_page(request: Request, track: str | None = None) -> Response:
    """Each track's (or one track's) champion, challengers, gate verdicts and chart."""
    token, from_cookie = _credential(request)
    try:
        principal = _reader(request, token)
    except Unauthorized:
        if token is not None and from_cookie and _public_reads(request):
            principal = ANONYMOUS  # a stale cookie on an open server: forget it, show the page
        else:
            message = ("That token is no longer accepted (unknown or revoked): sign in again."
                       if token is not None else None)
            response = _signin(request, status=401, message=message, track=track)
            if from_cookie:
                _forget(response, request)
            return response
    try:
        response = _render_leaderboard(request, track=track or None, principal=principal,
                                       signed_in=from_cookie and principal is not ANONYMOUS)
    except PodiumError as error:
        response = _page(request, "error.html", status=error.status, title=error.title,
                         detail=error.detail)
    if from_cookie and principal is ANONYMOUS:
        _forget(response, request)
    return response


def _render_leaderboard(request: Request, *, track: str | None, principal: Principal,
                        signed_in: bool) -> Response:
    config = request.app.state.config
    with read_session(request.app.state.engine) as session:
        tracks = store.list_tracks(session)
        if track is not None and track not in tracks:
            raise NotFound(f"There is no track named {track!r}.", code="unknown_track")
        if tracks:
            from registry.leaderboard import build_leaderboard  # pandas, scipy: when needed
        boards = []
        for name in [track] if track else tracks:
            try:
                boards.append(build_leaderboard(session, track=name, config=config))
            except NotFound:  # a track whose versions are all gone: nothing to show
                boards.append({"track": name, "rows": [], "curves": {}, "winner": None,
                               "winner_reason": None})
    return _page(request, "leaderboard.html", status=200, tracks=tracks, selected=track,
                 boards=[_board_view(board) for board in boards], principal=principal,
                 signed_in=signed_in, plotly_src=f"{PLOTLY_PATH}?v={_plotly_version()}")


def _board_view(board: dict[str, Any]) -> dict[str, Any]:
    """A track's leaderboard split for the page: who is live, who is retired, the chart."""
    live = [row for row in board["rows"] if row["state"] != "retired"]
    return {**board, "live": live,
            "retired": [row for row in board["rows"] if row["state"] == "retired"],
            "scored": any(row["metrics"]["days"] for row in board["rows"]),
            "figure": _figure(live, board["curves"])}


def _figure(rows: list[dict[str, Any]], curves: dict[str, Any]) -> dict[str, Any] | None:
    """Cumulative net return (%) of the champion and each challenger, one trace each."""
    drawn = [row for row in rows if curves.get(row["version_id"], {}).get("days")]
    if not drawn:
        return None
    import plotly.graph_objects as go  # only when a chart is drawn

    figure = go.Figure()
    for row in drawn:
        curve = curves[row["version_id"]]
        champion = row["state"] == "champion"
        figure.add_trace(go.Scatter(
            x=curve["days"], y=[100.0 * value for value in curve["cumulative_net"]],
            mode="lines", name=row["version_id"] + (" (champion)" if champion else ""),
            line={"width": 3, "color": CHAMPION_COLOUR} if champion else {"width": 1.6},
            hovertemplate="%{x}<br>%{y:.2f} %"))
    figure.update_layout(
        template="plotly_white", height=420, margin={"l": 60, "r": 20, "t": 20, "b": 40},
        xaxis_title="day", yaxis_title="cumulative net return (%)", hovermode="closest",
        legend={"orientation": "h", "yanchor": "top", "y": -0.15, "x": 0})
    return json.loads(figure.to_json())


# --------------------------------------------------------------------------- signing in


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in(request: Request) -> Response:
    """Check a pasted token; if it reads, keep it in an HttpOnly cookie and go to the page."""
    if not _same_origin(request):
        return _page(request, "error.html", status=403, title="Forbidden",
                     detail="A sign-in must come from this server's own page.")
    form = await _form(request)
    track = _track_or_none(form.get("track"))
    token = form.get("token", "").strip()
    if not token:
        return _signin(request, status=400, message="Paste a token to sign in.", track=track)
    try:
        await run_in_threadpool(_reader, request, token)
    except Unauthorized:
        return _signin(request, status=401, track=track,
                       message="That token was not accepted: it is unknown or revoked.")
    response = RedirectResponse(_home(track), status_code=303)
    response.set_cookie(COOKIE, token, max_age=COOKIE_MAX_AGE, path="/", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    if not _same_origin(request):
        return _page(request, "error.html", status=403, title="Forbidden",
                     detail="A sign-out must come from this server's own page.")
    response = RedirectResponse("/", status_code=303)
    _forget(response, request)
    return response


def _credential(request: Request) -> tuple[str | None, bool]:
    """``(token, came from the cookie)``: the Authorization header first, then the cookie."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip(), False
    cookie = request.cookies.get(COOKIE)
    return (cookie, True) if cookie else (None, False)


def _reader(request: Request, token: str | None) -> Principal:
    """The caller, who may read: as ``ReaderDep`` decides for the API."""
    if token is None:
        if _public_reads(request):
            return ANONYMOUS
        raise Unauthorized("a token is required", code="missing_token")
    cache: TokenCache = request.app.state.token_cache
    principal = cache.get(token)
    if principal is None:
        with read_session(request.app.state.engine) as session:
            principal = authenticate(session, token)
        cache.put(token, principal)
    return require_scope(principal, "read")


def _public_reads(request: Request) -> bool:
    return request.app.state.config.server.public_reads


def _same_origin(request: Request) -> bool:
    """No cross-site form posts: an ``Origin`` header, when sent, must be this server."""
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host")


async def _form(request: Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if content_type != "application/x-www-form-urlencoded" or len(body) > MAX_FORM_BYTES:
        return {}
    try:
        fields = parse_qs(body.decode("utf-8"), max_num_fields=8)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {key: values[0][:MAX_TOKEN_CHARS + 1] for key, values in fields.items()}


def _forget(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")


def _track_or_none(value: str | None) -> str | None:
    try:
        return validate_slug(value, what="track") if value else None
    except PodiumError:
        return None


def _home(track: str | None) -> str:
    return "/?" + urlencode({"track": track}) if track else "/"


def _signin(request: Request, *, status: int, message: str | None,
            track: str | None) -> Response:
    response = _page(request, "signin.html", status=status, message=message,
                     track=_track_or_none(track))
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="podium"'
    return response


# --------------------------------------------------------------------------- rendering


def _page(request: Request, template: str, *, status: int, **context: Any) -> HTMLResponse:
    """A template as a response, with a per-response script nonce and a strict policy."""
    nonce = secrets.token_urlsafe(16)
    html = _templates().get_template(template).render(nonce=nonce, **context)
    return HTMLResponse(html, status_code=status, headers={
        "Cache-Control": "no-store",
        "Content-Security-Policy": (
            f"default-src 'none'; script-src 'self' 'nonce-{nonce}'; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'"),
        "Referrer-Policy": "same-origin",  # not "no-referrer": forms would post Origin: null
        "X-Content-Type-Options": "nosniff",
    })


@functools.cache
def _templates() -> Any:
    import jinja2  # only when a page is rendered

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("registry.api", "templates"), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    environment.filters["num"] = _number
    return environment


def _number(value: float | None, scale: float = 1.0, digits: int = 2, suffix: str = "",
            signed: bool = False) -> str:
    """``value × scale`` for a table cell; an en dash where it is undefined."""
    if value is None:
        return "–"
    text = format(value * scale, f"{'+' if signed else ''},.{digits}f")
    return text.replace("-", "−") + suffix.replace(" ", "\u00a0")  # "54.5 %" on one line


# --------------------------------------------------------------------------- plotly.js


@dataclass(frozen=True)
class _Asset:
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


@functools.cache
def _plotly_asset() -> _Asset:
    import gzip

    from plotly.offline import get_plotlyjs

    plain = get_plotlyjs().encode("utf-8")
    return _Asset(plain=plain, gzipped=gzip.compress(plain, compresslevel=6, mtime=0),
                  etag='"' + hashlib.sha256(plain).hexdigest()[:32] + '"')


@functools.cache
def _plotly_version() -> str:
    from importlib import metadata

    return metadata.version("plotly")
