"""HTML answers: a Jinja2 template rendered with a per-response script nonce and a strict
Content-Security-Policy (no inline script without the nonce, nothing from other origins).

Jinja2 is imported on first use, so ``registry serve`` starts and idles without it.
"""

from __future__ import annotations

import functools
import secrets
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse


def render_html(request: Request, template: str, *, status: int,
                **context: Any) -> HTMLResponse:
    """``template`` as a response, with a per-response script nonce and a strict policy."""
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
    environment.filters["num"] = format_number
    return environment


def format_number(value: float | None, scale: float = 1.0, digits: int = 2, suffix: str = "",
                  signed: bool = False) -> str:
    """``value × scale`` for a table cell; an en dash where it is undefined."""
    if value is None:
        return "–"
    text = format(value * scale, f"{'+' if signed else ''},.{digits}f")
    return text.replace("-", "−") + suffix.replace(" ", "\u00a0")  # "54.5 %" on one line
