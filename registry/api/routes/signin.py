"""Signing in to the leaderboard page: a pasted token kept in an HttpOnly cookie.

``POST /sign-in`` checks the token (it must be able to read) and sets the ``podium_token``
cookie (HttpOnly, SameSite=Strict, Secure over HTTPS); ``POST /sign-out`` clears it. Both refuse
a form posted from another origin. The cookie is read only by the page (``page_credential``),
never by the API, so it can never authorise an API write. The token travels only in a POST body
or the cookie: never in a URL, a log line or a page.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from registry.api.bearer import bearer_token, identify_caller
from registry.api.html import render_html
from registry.auth import MAX_TOKEN_CHARS, Principal, require_scope
from registry.errors import PodiumError, Unauthorized
from registry.ids import validate_slug

router = APIRouter(include_in_schema=False)
COOKIE = "podium_token"
COOKIE_MAX_AGE = 8 * 3600  # a working day; a revoked token stops working at once anyway
MAX_FORM_BYTES = 4096


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in(request: Request) -> Response:
    """Check a pasted token; if it reads, keep it in an HttpOnly cookie and go to the page."""
    if not _same_origin(request):
        return render_html(request, "error.html", status=403, title="Forbidden",
                           detail="A sign-in must come from this server's own page.")
    form = await _form(request)
    track = _track_or_none(form.get("track"))
    token = form.get("token", "").strip()
    if not token:
        return signin_page(request, status=400, message="Paste a token to sign in.",
                           track=track)
    try:
        await run_in_threadpool(page_reader, request, token)
    except Unauthorized:
        return signin_page(request, status=401, track=track,
                           message="That token was not accepted: it is unknown or revoked.")
    response = RedirectResponse(_home(track), status_code=303)
    response.set_cookie(COOKIE, token, max_age=COOKIE_MAX_AGE, path="/", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    if not _same_origin(request):
        return render_html(request, "error.html", status=403, title="Forbidden",
                           detail="A sign-out must come from this server's own page.")
    response = RedirectResponse("/", status_code=303)
    forget_cookie(response, request)
    return response


def page_credential(request: Request) -> tuple[str | None, bool]:
    """``(token, came from the cookie)``: the Authorization header first, then the cookie."""
    token = bearer_token(request)
    if token is not None:
        return token, False
    cookie = request.cookies.get(COOKIE)
    return (cookie, True) if cookie else (None, False)


def page_reader(request: Request, token: str | None) -> Principal:
    """The caller, who may read: as ``ReaderDep`` decides for the API."""
    return require_scope(identify_caller(request, token), "read")


def forget_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")


def signin_page(request: Request, *, status: int, message: str | None,
                track: str | None) -> Response:
    response = render_html(request, "signin.html", status=status, message=message,
                           track=_track_or_none(track))
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="podium"'
    return response


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


def _track_or_none(value: str | None) -> str | None:
    try:
        return validate_slug(value, what="track") if value else None
    except PodiumError:
        return None


def _home(track: str | None) -> str:
    return "/?" + urlencode({"track": track}) if track else "/"
