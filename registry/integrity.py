"""Where a version's bundle lives, and whether its files are what was registered."""

from __future__ import annotations

from pathlib import Path

from registry.errors import IntegrityFailure, InvalidInput
from registry.ids import validate_slug, validate_version_id
from trainer.checksums import IntegrityError, sums_digest, verify_sha256sums


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


def verify_bundle(path: Path, *, expected_digest: str | None = None) -> str:
    """Check every file against SHA256SUMS (and SHA256SUMS against the registered digest)."""
    try:
        verify_sha256sums(path)
        digest = sums_digest(path)
    except IntegrityError as exc:
        raise IntegrityFailure(str(exc)) from None
    if expected_digest is not None and digest != expected_digest:
        raise IntegrityFailure(
            f"{path}: SHA256SUMS differs from the one registered (the bundle was replaced)"
        )
    return digest
