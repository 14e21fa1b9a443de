"""SHA256SUMS for artefact bundles: write once when a bundle is sealed, verify before any use.

The format is the one `sha256sum` prints and checks (``<hex>  <relative path>``), so a person can
run ``sha256sum -c SHA256SUMS`` inside a bundle. Verification is strict: every file in the bundle
must be listed and match, and every listed file must exist; a truncated or edited list fails.

A process that checks the same sealed bundles again and again (the shadow runner on each tick,
the registry on each promotion) hashes a file again only when its status has changed: digests
are remembered by path with the file's device, inode, size, modification and change times. A
write, a replacement, a ``chmod`` or a ``touch`` gives a file a new change time, which no
program can set back. The kernel stamps files from a coarse clock, so a write just after a file
was hashed could leave its stamps as they were; a file changed within :data:`RACY_SECONDS` of
being hashed is therefore not remembered (git's index treats such "racily clean" files alike).
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

SUMS_NAME = "SHA256SUMS"
_LINE = re.compile(r"^([0-9a-f]{64})  (\S(?:.*\S)?)$")
RACY_SECONDS = 2.0  # a file changed more recently than this when hashed is hashed again
DIGESTS_REMEMBERED = 65536  # files whose digest a process remembers

_digests_lock = threading.Lock()
_digests: dict[str, tuple[tuple[int, ...], str]] = {}


class IntegrityError(Exception):
    """A bundle's files do not match its SHA256SUMS (or the list itself is damaged)."""


def sha256_file(path: str | Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _stamp(status: os.stat_result) -> tuple[int, ...]:
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns,
            status.st_ctime_ns)


def checked_sha256(path: str) -> str:
    """:func:`sha256_file` of a file being verified, remembered while its status is unchanged
    (see the module doc)."""
    with _digests_lock:
        known = _digests.get(path)
    if known is not None and known[0] == _stamp(os.stat(path)):
        return known[1]
    with open(path, "rb") as handle:
        status = os.fstat(handle.fileno())  # before reading: a later write changes it
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    if time.time_ns() - max(status.st_mtime_ns, status.st_ctime_ns) > RACY_SECONDS * 1e9:
        with _digests_lock:
            if len(_digests) >= DIGESTS_REMEMBERED:
                _digests.clear()
            _digests[path] = (_stamp(status), digest)
    return digest


def _bundle_files(bundle_dir: Path) -> list[str]:
    """Every regular file under ``bundle_dir`` but SHA256SUMS, as sorted POSIX paths."""
    found: list[str] = []
    pending = [("", os.fspath(bundle_dir))]
    while pending:
        prefix, directory = pending.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append((f"{prefix}{entry.name}/", entry.path))
                elif entry.is_file():  # a link to a file counts, as it did for os.walk
                    found.append(prefix + entry.name)
    return sorted(rel for rel in found if rel != SUMS_NAME)


def write_sha256sums(bundle_dir: Path) -> Path:
    """List every file under ``bundle_dir`` with its SHA-256; returns the path of the list."""
    bundle_dir = Path(bundle_dir)
    lines = [f"{sha256_file(bundle_dir / rel)}  {rel}\n" for rel in _bundle_files(bundle_dir)]
    target = bundle_dir / SUMS_NAME
    target.write_text("".join(lines), encoding="utf-8")
    return target


def read_sha256sums(bundle_dir: Path) -> dict[str, str]:
    """Parse SHA256SUMS into ``{relative path: hex digest}``; raise on any malformed line."""
    bundle_dir = Path(bundle_dir)
    sums_path = bundle_dir / SUMS_NAME
    if not sums_path.is_file():
        raise IntegrityError(f"{sums_path}: missing; the bundle was never sealed")
    try:
        text = sums_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise IntegrityError(f"{sums_path}: not UTF-8 text ({exc.reason})") from None
    return parse_sha256sums(text, where=str(sums_path))


def parse_sha256sums(text: str, *, where: str) -> dict[str, str]:
    """The listing in a SHA256SUMS's text; ``where`` names it in an error."""
    if not text.endswith("\n"):
        raise IntegrityError(f"{where}: truncated (no final newline)")
    listed: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        match = _LINE.match(line)
        if match is None:
            raise IntegrityError(f"{where}:{lineno}: malformed line {line[:80]!r}")
        digest, rel = match.groups()
        if rel.startswith("/") or ".." in rel.split("/"):
            raise IntegrityError(f"{where}:{lineno}: path escapes the bundle: {rel!r}")
        listed[rel] = digest
    if not listed:
        raise IntegrityError(f"{where}: lists no files")
    return listed


def verify_sha256sums(bundle_dir: Path) -> dict[str, str]:
    """Check every file against SHA256SUMS; return the listing or raise ``IntegrityError``."""
    bundle_dir = Path(bundle_dir)
    if not bundle_dir.is_dir():
        raise IntegrityError(f"{bundle_dir}: bundle directory not found")
    listed = read_sha256sums(bundle_dir)
    root = os.fspath(bundle_dir)
    check_listing(str(bundle_dir), listed, _bundle_files(bundle_dir),
                  lambda rel: checked_sha256(os.path.join(root, rel)))
    return listed


def check_listing(where: str, listed: dict[str, str], present: Iterable[str],
                  sha256_of: Callable[[str], str]) -> None:
    """A bundle's files (``present``, SHA256SUMS aside) are exactly those ``listed``, each with
    its listed digest (``sha256_of(rel)``); else ``IntegrityError`` naming ``where``."""
    present = set(present)
    if missing := sorted(set(listed) - present):
        raise IntegrityError(f"{where}: listed in {SUMS_NAME} but missing: {missing[0]}")
    if unlisted := sorted(present - set(listed)):
        raise IntegrityError(f"{where}: not listed in {SUMS_NAME}: {unlisted[0]}")
    for rel, expected in listed.items():
        if (actual := sha256_of(rel)) != expected:
            raise IntegrityError(f"{where}: checksum mismatch for {rel} "
                                 f"(expected {expected[:12]}…, found {actual[:12]}…)")


def sums_digest(bundle_dir: Path) -> str:
    """SHA-256 of the SHA256SUMS file itself: one digest that pins the whole bundle."""
    return checked_sha256(os.fspath(Path(bundle_dir) / SUMS_NAME))


def verified_digest(bundle_dir: Path, *, expected_digest: str | None = None) -> str:
    """:func:`verify_sha256sums`, then the :func:`sums_digest` that pins the bundle, which must
    be ``expected_digest`` when one is given (the digest registered: another bundle, however
    well sealed, is not this one). Returns the digest or raises ``IntegrityError``."""
    verify_sha256sums(bundle_dir)
    digest = sums_digest(bundle_dir)
    if expected_digest is not None and digest != expected_digest:
        raise IntegrityError(f"{bundle_dir}: SHA256SUMS differs from the one registered "
                             "(the bundle was replaced)")
    return digest
