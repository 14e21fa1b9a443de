"""Podium's domain errors: one place, stable codes, one HTTP status each.

Every error a user can cause is a ``PodiumError``. The API turns them into RFC 9457 problem JSON
(``type``, ``title``, ``status``, ``detail``, ``code``); the CLIs print ``detail`` on one line and
exit non-zero. Codes are part of the contract with users' scripts: never rename one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class PodiumError(Exception):
    """Base of every error a user can cause; ``code`` is stable, ``status`` is HTTP."""

    code = "podium_error"
    status = 500
    title = "Podium error"
    exit_code = 1

    def __init__(self, detail: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.extra = extra

    def problem(self) -> dict[str, Any]:
        """The RFC 9457 body for this error."""
        return {
            "type": f"https://podium.dev/problems/{self.code}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
            **self.extra,
        }


class ConfigError(PodiumError):
    code, status, title, exit_code = "invalid_config", 400, "Invalid configuration", 2


class InvalidInput(PodiumError):
    code, status, title = "invalid_input", 422, "Invalid input"


class NotFound(PodiumError):
    code, status, title = "not_found", 404, "Not found"


class AlreadyExists(PodiumError):
    code, status, title = "already_exists", 409, "Already exists"


class InvalidTransition(PodiumError):
    code, status, title = "invalid_transition", 409, "Invalid transition"


class ChampionChanged(PodiumError):
    """The compare-and-set on ``expected_champion`` failed: someone else promoted first."""

    code, status, title = "champion_changed", 409, "Champion changed"


class GateRejected(PodiumError):
    code, status, title = "gate_rejected", 409, "Promotion refused by the gate"


class IntegrityFailure(PodiumError):
    code, status, title = "integrity_failure", 422, "Artefact integrity check failed"


class Unauthorized(PodiumError):
    code, status, title = "unauthorized", 401, "Unauthorized"


class Forbidden(PodiumError):
    code, status, title = "forbidden", 403, "Forbidden"


class Unavailable(PodiumError):
    code, status, title = "unavailable", 503, "Service unavailable"


class PayloadTooLarge(PodiumError):
    code, status, title = "payload_too_large", 413, "Request body too large"


class RequestInProgress(PodiumError):
    """A request with the same ``Idempotency-Key`` is still running."""

    code, status, title = "idempotency_in_progress", 409, "Request in progress"


class LookAhead(PodiumError):
    """Predictions for a day whose outcome is already known: refused, never stored."""

    code, status, title = "outcome_landed", 409, "Outcome already landed"


class UnsupportedMediaType(PodiumError):
    code, status, title = "unsupported_media_type", 415, "Unsupported media type"


def describe_invalid_fields(errors: Iterable[Mapping[str, Any]]) -> str:
    """Pydantic's validation errors (``exc.errors()``) on one line: ``a.b: msg; c: msg``."""
    return "; ".join(f"{'.'.join(str(part) for part in error.get('loc', ()))}: "
                     f"{error.get('msg', '')}" for error in errors)


class InvalidData(PodiumError):
    """A track's data source breaks the panel contract (the detail names file, row, problem)."""

    code, status, title, exit_code = "invalid_data", 422, "Invalid data", 2


class HistoryChanged(PodiumError):
    """A landed day changed after it was used: Podium refuses to score on rewritten history."""

    code, status, title, exit_code = "history_changed", 409, "History changed", 2
