"""Answers served from stored bytes: encoded once (plain, gzipped, an ETag), sent as they are.

The big answers (plotly.js, a track's leaderboard and its page, hundreds of KB each) are built
and compressed once, off the event loop, and stored until what they show changes
(``registry.judged_tracks``); a read then only picks the stored bytes: 304 when the client's
``If-None-Match`` names the ETag, the gzipped bytes when it accepts gzip, the plain ones
otherwise. Nothing is rendered, serialised or compressed on a read.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from fastapi import Request, Response


@dataclass(frozen=True)
class EncodedBody:
    plain: bytes
    gzipped: bytes
    etag: str

    @classmethod
    def of(cls, plain: bytes) -> EncodedBody:
        return cls(plain=plain, gzipped=gzip.compress(plain, compresslevel=6, mtime=0),
                   etag='"' + hashlib.sha256(plain).hexdigest()[:32] + '"')


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` header allows gzip (``gzip;q=0`` refuses it)."""
    for part in accept_encoding.lower().split(","):
        coding, _, params = part.partition(";")
        if coding.strip() in ("gzip", "*"):
            quality = params.strip().removeprefix("q=")
            try:
                return not params.strip() or float(quality) > 0
            except ValueError:
                return False
    return False


def encoded_response(request: Request, body: EncodedBody, *, media_type: str,
                     headers: Mapping[str, str], status_code: int = 200) -> Response:
    """``body`` as the request allows it: 304, gzipped or plain, with its ETag."""
    headers = {**headers, "ETag": body.etag, "Vary": "Accept-Encoding"}
    sent = request.headers.get("if-none-match")
    if sent is not None and body.etag in {tag.strip() for tag in sent.split(",")}:
        return Response(status_code=304, headers=headers)
    if accepts_gzip(request.headers.get("accept-encoding", "")):
        return Response(body.gzipped, status_code=status_code, media_type=media_type,
                        headers={**headers, "Content-Encoding": "gzip"})
    return Response(body.plain, status_code=status_code, media_type=media_type,
                    headers=headers)
