"""Version identity: ``<label>-<YYYYMMDD>-<fp>`` and the fingerprint behind it.

A version id is validated before it is used anywhere, including as a directory name: the grammar
admits only lower-case letters, digits, ``.``, ``_`` and ``-``, never ``..``, so no valid id can
name a path outside its parent directory.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from registry.errors import InvalidInput
from trainer.jsonsafe import canonical_json

LABEL_PATTERN = r"[a-z0-9][a-z0-9._-]{0,47}"
# Used with ``fullmatch`` only, never anchored with ``$`` (which matches before a final newline).
_LABEL = re.compile(LABEL_PATTERN)
_VERSION = re.compile(rf"(?P<label>{LABEL_PATTERN})-(?P<date>[0-9]{{8}})-(?P<fp>[0-9a-f]{{8}})")
_FULL_FP = re.compile(r"[0-9a-f]{64}")
FP_LENGTH = 8
MAX_VERSION_ID = 48 + 1 + 8 + 1 + FP_LENGTH
# The most rows one listing returns (the store's pages, the CLI's --limit): here, not in the
# store, so that a CLI declares its options without loading the database layer.
MAX_PAGE = 1000

# The same grammars as JSON Schema (ECMA 262) regexes, for the OpenAPI: no "..", and a date that is
# a calendar date (leap days included), so a client can check an id exactly before sending it.
_MONTH_DAY = (r"(?:(?:0[13578]|1[02])(?:0[1-9]|[12][0-9]|3[01])"
              r"|(?:0[469]|11)(?:0[1-9]|[12][0-9]|30)|02(?:0[1-9]|1[0-9]|2[0-8]))")
_LEAP_DAY = r"(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)0229"
DATE_JSON_PATTERN = rf"(?!0000)(?:[0-9]{{4}}{_MONTH_DAY}|{_LEAP_DAY})"
SLUG_JSON_PATTERN = rf"^(?!.*\.\.){LABEL_PATTERN}$"
VERSION_ID_JSON_PATTERN = (rf"^(?!.*\.\.){LABEL_PATTERN}-{DATE_JSON_PATTERN}"
                           rf"-[0-9a-f]{{{FP_LENGTH}}}$")


@dataclass(frozen=True)
class VersionId:
    label: str
    train_cutoff: dt.date
    fp: str

    def __str__(self) -> str:
        return f"{self.label}-{self.train_cutoff:%Y%m%d}-{self.fp}"


def validate_slug(value: str, *, what: str = "label") -> str:
    """A label or track name: ``^[a-z0-9][a-z0-9._-]{0,47}$`` and no ``..``."""
    if not isinstance(value, str) or not _LABEL.fullmatch(value) or ".." in value:
        raise InvalidInput(
            f"invalid {what} {_show(value)}: use 1-48 of a-z 0-9 . _ -, starting with a letter "
            "or digit, without '..'",
            code=f"invalid_{what.replace(' ', '_')}",
        )
    return value


def build_version_id(label: str, train_cutoff: dt.date, fingerprint: str) -> str:
    """``<label>-<YYYYMMDD>-<first 8 hex of the fingerprint>``."""
    validate_slug(label)
    if not _FULL_FP.fullmatch(fingerprint or ""):
        raise InvalidInput(
            f"fingerprint must be 64 lower-case hex digits, got {_show(fingerprint)}"
        )
    return str(VersionId(label, train_cutoff, fingerprint[:FP_LENGTH]))


def parse_version_id(value: str) -> VersionId:
    """Split and validate a version id; raise ``InvalidInput`` (code ``invalid_version_id``)."""
    match = _VERSION.fullmatch(value) if isinstance(value, str) else None
    if match is None or ".." in match["label"]:
        raise InvalidInput(
            f"invalid version id {_show(value)}: expected <label>-<YYYYMMDD>-<8 hex>, "
            "e.g. v3.1-resmom-20250630-3fa2c1de",
            code="invalid_version_id",
        )
    try:
        cutoff = dt.datetime.strptime(match["date"], "%Y%m%d").date()
    except ValueError:
        raise InvalidInput(
            f"invalid version id {_show(value)}: {match['date']} is not a calendar date",
            code="invalid_version_id",
        ) from None
    return VersionId(match["label"], cutoff, match["fp"])


def validate_version_id(value: str) -> str:
    parse_version_id(value)
    return value


def fingerprint(config: dict[str, Any], *, dataset_fingerprint: str, code_version: str) -> str:
    """Full SHA-256 over the resolved config, the dataset's fingerprint and the code version."""
    payload = {"config": config, "dataset": dataset_fingerprint, "code": code_version}
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "…'"
