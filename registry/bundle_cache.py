"""A consumer's copies of bundles, downloaded over the REST API: one directory per digest.

A machine that has only the registry's URL and a token loads a champion from here: the whole
bundle comes in one response (``GET /versions/{id}/bundle.tar``, whose ETag must be the digest
expected), is unpacked into a temporary sibling, checked against ``SHA256SUMS`` and the digest
the registry holds, and renamed to ``<cache>/<digest>``. A bundle already there and intact costs
no transfer; a damaged copy is downloaded again.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from registry import errors
from registry.ids import validate_version_id
from trainer.checksums import IntegrityError, verified_digest

if TYPE_CHECKING:  # pragma: no cover
    from registry.client import Client

CACHE_ENV = "PODIUM_BUNDLE_CACHE"


def default_cache_dir() -> Path:
    """``$PODIUM_BUNDLE_CACHE``, else ``~/.cache/podium/bundles``."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "podium" / "bundles"


def cache_bundle(cache_dir: Path, digest: str, *, name: str,
                 download: Callable[[Path], int]) -> tuple[Path, int]:
    """``<cache_dir>/<digest>``, verified; when absent or damaged, ``download(directory)``
    fills a temporary sibling (returning the bytes it transferred), which is verified against
    ``digest`` and renamed into place. ``name`` stands for the bundle in errors."""
    target = Path(cache_dir) / digest
    if target.is_dir():
        try:
            verified_digest(target, expected_digest=digest)
            return target, 0
        except IntegrityError:
            shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.parent / f".{digest}.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        partial.mkdir()
        transferred = download(partial)
        try:
            verified_digest(partial, expected_digest=digest)
        except IntegrityError as exc:
            raise errors.IntegrityFailure(str(exc).replace(str(partial), name)) from None
        try:
            os.rename(partial, target)
        except OSError:  # another process put the same bytes there first
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target, transferred


def cached_bundle(client: Client, *, version_id: str, digest: str, cache_dir: Path
                  ) -> tuple[Path, int]:
    """The verified local copy of ``version_id``'s bundle, and the bytes downloaded for it."""
    validate_version_id(version_id)
    if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
        raise errors.IntegrityFailure(f"{version_id}: {digest[:80]!r} is not a SHA-256 digest")

    def download(partial: Path) -> int:
        return client.download_bundle(version_id, partial, digest=digest)

    return cache_bundle(cache_dir, digest, name=version_id, download=download)
