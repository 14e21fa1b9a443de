"""An external version's identity: what was submitted, checked and fingerprinted.

An external version is trained anywhere; Podium holds no bundle for it, only what its owner
registered: track, label, train cutoff, description and provenance (an artefact URI and/or
digest, free-form metadata). The fingerprint is the SHA-256 of the canonical JSON of exactly
that, so the same submission gets the same ``<label>-<YYYYMMDD>-<fp>`` id wherever it is sent
from, and the integrity check of an external version is that what is stored still hashes to
its fingerprint (there are no files to check).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import Any

from registry.errors import IntegrityFailure, InvalidInput
from registry.ids import build_version_id, canonical_json, validate_slug
from registry.models import ModelVersion

MAX_DESCRIPTION = 2000
MAX_URI = 2048
MAX_METADATA_BYTES = 16_384
# e.g. "sha256:3fa2…" or a bare hex digest (32 to 128 hex digits)
DIGEST_PATTERN = r"^(?:[a-z0-9][a-z0-9-]{0,15}:)?[0-9a-f]{32,128}$"
_DIGEST = re.compile(DIGEST_PATTERN)
# a scheme, ":", then something that is not only slashes; no white space or NUL anywhere
URI_PATTERN = r"^[A-Za-z][A-Za-z0-9+.-]*:/*[^\s/\u0000][^\s\u0000]*$"
_URI = re.compile(URI_PATTERN)


def provenance_record(*, uri: str | None, digest: str | None,
                      metadata: dict[str, Any] | None) -> dict[str, Any]:
    """The provenance as stored, after checking it: a URI and/or a digest is required."""
    if not uri and not digest:
        raise InvalidInput("an external version needs its provenance: an artefact URI, a "
                           "digest, or both", code="provenance_required")
    if uri is not None and (len(uri) > MAX_URI or not _URI.fullmatch(uri)):
        raise InvalidInput(f"artefact URI must be an absolute URI such as s3://bucket/model.pt "
                           f"(a scheme, ':', no spaces), at most {MAX_URI} characters",
                           code="invalid_uri")
    if digest is not None and not _DIGEST.fullmatch(digest):
        raise InvalidInput("artefact digest must be lower-case hex (32-128 digits), optionally "
                           "prefixed by its algorithm, e.g. sha256:3fa2…", code="invalid_digest")
    metadata = metadata or {}
    if not isinstance(metadata, dict):
        raise InvalidInput("provenance metadata must be a JSON object", code="invalid_metadata")
    try:
        size = len(canonical_json(metadata).encode("utf-8"))
    except (TypeError, ValueError):
        raise InvalidInput("provenance metadata must be plain JSON with finite numbers",
                           code="invalid_metadata") from None
    if size > MAX_METADATA_BYTES:
        raise InvalidInput(f"provenance metadata is {size} bytes as JSON; at most "
                           f"{MAX_METADATA_BYTES}", code="invalid_metadata")
    return {"uri": uri, "digest": digest, "metadata": metadata}


def submitted(*, track: str, label: str, train_cutoff: dt.date, description: str,
              provenance: dict[str, Any]) -> dict[str, Any]:
    """What an external version's fingerprint covers."""
    validate_slug(track, what="track")
    validate_slug(label)
    if len(description) > MAX_DESCRIPTION or "\x00" in description:
        raise InvalidInput(f"description: at most {MAX_DESCRIPTION} characters, no NUL",
                           code="invalid_description")
    return {"kind": "external", "track": track, "label": label,
            "train_cutoff": train_cutoff.isoformat(), "description": description,
            "provenance": provenance}


def external_fingerprint(submission: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(submission).encode("utf-8")).hexdigest()


def external_version_id(submission: dict[str, Any]) -> tuple[str, str]:
    """``(version id, full fingerprint)`` of a submission from :func:`submitted`."""
    fingerprint = external_fingerprint(submission)
    cutoff = dt.date.fromisoformat(submission["train_cutoff"])
    return build_version_id(submission["label"], cutoff, fingerprint), fingerprint


def stored_submission(version: ModelVersion) -> dict[str, Any]:
    """What an external version's row says was submitted."""
    return {"kind": "external", "track": version.track, "label": version.label,
            "train_cutoff": version.train_cutoff.isoformat(),
            "description": (version.details or {}).get("description", ""),
            "provenance": version.provenance}


def verify_provenance(version: ModelVersion) -> str:
    """An external version's integrity: its stored submission still hashes to its fingerprint."""
    try:
        fingerprint = external_fingerprint(stored_submission(version))
    except (TypeError, ValueError):  # not plain JSON any more
        fingerprint = None
    if fingerprint != version.fingerprint:
        raise IntegrityFailure(f"external version {version.version_id}: its stored provenance "
                               "no longer matches the fingerprint it was registered with")
    return version.fingerprint
