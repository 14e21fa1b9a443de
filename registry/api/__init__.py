"""Podium's REST service (FastAPI): ``create_app(config)``; routes under ``/api/v1``.

The app is imported on first use of these names, so that a CLI importing one of the API's
small modules (the prediction-body limits, say) does not load FastAPI and every route."""

from __future__ import annotations

from typing import Any

__all__ = ["API_PREFIX", "create_app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from registry.api import app

        return getattr(app, name)
    raise AttributeError(f"module 'registry.api' has no attribute {name!r}")
