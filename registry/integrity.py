"""Where a version's bundle lives, and whether its files (or, for an external version, its
provenance) are what was registered."""

from __future__ import annotations

from pathlib import Path

from registry.errors import IntegrityFailure, InvalidInput
from registry.ids import validate_slug, validate_version_id
from registry.models import ModelVersion
from registry.provenance import verify_provenance
from trainer.checksums import IntegrityError, verified_digest


def bundle_dir(artefacts_root: Path, *, track: str, version_id: str) -> Path:
    """``<artefacts_root>/models/<track>/<version_id>``, both parts validated first."""
    validate_slug(track, what="track")
    validate_version_id(version_id)
    return Path(artefacts_root) / "models" / track / version_id


def relative_bundle_path(artefacts_root: Path, path: Path) -> str:
    root = Path(artefacts_root).resolve()
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(root):
        raise InvalidInput(f"bundle {path} is outside the artefacts root {root}",
                           code="bundle_outside_root")
    return resolved.relative_to(root).as_posix()


def verify_bundle(path: Path, *, expected_digest: str | None = None,
                  artefacts_root: Path | None = None) -> str:
    """Check every file against SHA256SUMS (and SHA256SUMS against the registered digest).

    With ``artefacts_root``, the failure names paths relative to it: an API answer never
    reveals where the server keeps its artefacts."""
    try:
        return verified_digest(path, expected_digest=expected_digest)
    except IntegrityError as exc:
        raise IntegrityFailure(_relative_to(str(exc), artefacts_root)) from None


def verify_version(artefacts_root: Path, version: ModelVersion) -> str:
    """A version's integrity before it serves: its bundle's files for a built-in version; for
    an external one (no bundle), its registered provenance against its fingerprint."""
    if version.kind == "external":
        return verify_provenance(version)
    return verify_bundle(Path(artefacts_root) / version.bundle_path,
                         expected_digest=version.bundle_digest, artefacts_root=artefacts_root)


def _relative_to(message: str, artefacts_root: Path | None) -> str:
    if artefacts_root is None:
        return message
    for root in {str(Path(artefacts_root).resolve()), str(Path(artefacts_root))}:
        message = message.replace(root.rstrip("/") + "/", "")
    return message
