"""HTML answers: a Jinja2 template under a strict Content-Security-Policy (scripts only from
this server's files, no inline script at all, nothing from other origins). With no per-response
nonce, a page can be rendered once and served as stored bytes (``registry.api.encoded``).

Jinja2 is imported on first use, so ``registry serve`` starts and idles without it.
"""

from __future__ import annotations

import functools
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "Referrer-Policy": "same-origin",  # not "no-referrer": forms would post Origin: null
    "X-Content-Type-Options": "nosniff",
}


def render_html(request: Request, template: str, *, status: int,
                **context: Any) -> HTMLResponse:
    """``template`` as a response, under the pages' strict policy."""
    return HTMLResponse(render_text(template, **context), status_code=status,
                        headers=PAGE_HEADERS)


def render_text(template: str, **context: Any) -> str:
    """``template`` rendered (autoescaped, every variable defined)."""
    return _templates().get_template(template).render(**context)


@functools.cache
def _templates() -> Any:
    import jinja2  # only when a page is rendered

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("registry.api", "templates"), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    environment.filters["num"] = format_number
    return environment


def format_number(value: float | None, scale: float = 1.0, digits: int = 2, suffix: str = "",
                  signed: bool = False) -> str:
    """``value × scale`` for a table cell; an en dash where it is undefined."""
    if value is None:
        return "–"
    text = format(value * scale, f"{'+' if signed else ''},.{digits}f")
    return text.replace("-", "−") + suffix.replace(" ", "\u00a0")  # "54.5 %" on one line
