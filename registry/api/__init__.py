"""Podium's REST service (FastAPI): ``create_app(config)``; routes under ``/api/v1``."""

from registry.api.app import API_PREFIX, create_app

__all__ = ["API_PREFIX", "create_app"]
