"""The consumer client: ``Client(url, token)`` over the REST API, and ``load_champion``.

Errors come back as the registry's own domain errors (``NotFound``, ``ChampionChanged``,
``GateRejected`` ...), rebuilt from the problem JSON's ``code`` and status, with the body's
extra fields (e.g. the gate report) on ``error.extra``.

``load_champion(track)`` (a ``ChampionPredictor`` that follows promotions) lives in
:mod:`registry.champion`, which loads, caches and hot-swaps the champion's model through this
client; it is imported here too, where consumers have always found it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from registry import errors
from registry.champion import (
    ChampionPredictor,
    ExternalLoader,
    load_champion,
    shared_artefacts_root,
)
from registry.ids import validate_slug, validate_version_id

__all__ = ["DEFAULT_URL", "ChampionPredictor", "Client", "error_from_problem", "load_champion"]

DEFAULT_URL = "http://127.0.0.1:8000"
_BY_CODE: dict[str, type[errors.PodiumError]] = {
    "champion_changed": errors.ChampionChanged,
    "gate_rejected": errors.GateRejected,
    "integrity_failure": errors.IntegrityFailure,
    "idempotency_in_progress": errors.RequestInProgress,
    "payload_too_large": errors.PayloadTooLarge,
    "outcome_landed": errors.LookAhead,
    "day_settled": errors.LookAhead,
    "unsupported_media_type": errors.UnsupportedMediaType,
}
_BY_STATUS: dict[int, type[errors.PodiumError]] = {
    401: errors.Unauthorized, 403: errors.Forbidden, 404: errors.NotFound,
    413: errors.PayloadTooLarge, 422: errors.InvalidInput, 503: errors.Unavailable,
}
_STANDARD = {"type", "title", "status", "detail", "code"}


def error_from_problem(response: httpx.Response) -> errors.PodiumError:
    """The domain error a problem-JSON response stands for."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    code = str(body.get("code") or f"http_{response.status_code}")
    detail = str(body.get("detail") or f"HTTP {response.status_code} from the registry")
    cls = _BY_CODE.get(code)
    if cls is None and response.status_code == 409:
        cls = errors.AlreadyExists if code in ("already_exists", "version_conflict",
                                               "token_exists", "predictions_exist") \
            else errors.InvalidTransition
    cls = cls or _BY_STATUS.get(response.status_code, errors.PodiumError)
    extra = {k: v for k, v in body.items() if k not in _STANDARD}
    error = cls(detail, code=code, **extra)
    error.status = response.status_code
    return error


class Client:
    """The registry's REST API. ``url`` is the server's root (``/api/v1`` is added)."""

    def __init__(self, url: str | None = None, token: str | None = None, *,
                 timeout: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        self.url = (url or os.environ.get("PODIUM_URL") or DEFAULT_URL).rstrip("/")
        token = token if token is not None else os.environ.get("PODIUM_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=f"{self.url}/api/v1", headers=headers,
                                  timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- reads

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def tracks(self) -> list[dict[str, Any]]:
        return self._call("GET", "/tracks")["items"]

    def champion(self, track: str) -> dict[str, Any]:
        """The track's champion: ``version_id``, ``bundle_path``, ``bundle_digest`` ..."""
        return self._call("GET", f"/tracks/{validate_slug(track, what='track')}/champion")

    def champion_if_changed(self, track: str, etag: str | None
                            ) -> tuple[dict[str, Any] | None, str | None]:
        """``(champion, etag)``, or ``(None, etag)`` when it has not changed since ``etag``."""
        headers = {"If-None-Match": etag} if etag else {}
        response = self._send("GET", f"/tracks/{validate_slug(track, what='track')}/champion",
                              headers=headers)
        if response.status_code == 304:
            return None, etag
        return self._json(response), response.headers.get("ETag")

    def version(self, version_id: str) -> dict[str, Any]:
        return self._call("GET", f"/versions/{validate_version_id(version_id)}")

    def download_bundle(self, version_id: str, target: Path, *, digest: str) -> int:
        """Stream a version's whole bundle (one tar) into the directory ``target``; returns the
        bytes of its files. ``digest``: the bundle expected (the registry's must be it)."""
        from registry.bundle_archive import unpack

        url = f"/versions/{validate_version_id(version_id)}/bundle.tar"
        try:
            with self._http.stream("GET", url) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_from_problem(response)
                served = response.headers.get("ETag", "").strip('"')
                if served != digest:
                    raise errors.IntegrityFailure(f"{version_id}: the registry now serves "
                                                  f"bundle {served[:12]}…, not {digest[:12]}…")
                return unpack(response.iter_bytes(1 << 20), target, name=version_id)
        except httpx.TransportError as exc:
            raise errors.Unavailable(f"download of the bundle of {version_id} from the registry "
                                     f"at {self.url} failed ({type(exc).__name__})",
                                     code="registry_unreachable") from None

    def versions(self, *, track: str | None = None, state: str | None = None,
                 limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        params.update({k: v for k, v in (("track", track), ("state", state)) if v})
        return self._call("GET", "/versions", params=params)["items"]

    def audit(self, track: str, *, limit: int = 100) -> list[dict[str, Any]]:
        return self._call("GET", f"/tracks/{validate_slug(track, what='track')}/audit",
                          params={"limit": limit})["items"]

    def events(self, *, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        return self._call("GET", "/events", params={"after": after, "limit": limit})["items"]

    # -- transitions

    def promote(self, version_id: str, reason: str, *, force: bool = False,
                expected_champion: str | None = None,
                idempotency_key: str | None = None) -> dict[str, Any]:
        """Promote through the gate; ``GateRejected`` (report in ``.extra['gate']``) if refused."""
        body = {"reason": reason, "force": force, "expected_champion": expected_champion}
        return self._call("POST", f"/versions/{validate_version_id(version_id)}/promote",
                          json=body, idempotency_key=idempotency_key)

    def retire(self, version_id: str, reason: str, *,
               idempotency_key: str | None = None) -> dict[str, Any]:
        return self._call("POST", f"/versions/{validate_version_id(version_id)}/retire",
                          json={"reason": reason}, idempotency_key=idempotency_key)

    def rollback(self, track: str, reason: str, *, expected_champion: str | None = None,
                 idempotency_key: str | None = None) -> dict[str, Any]:
        return self._call("POST", f"/tracks/{validate_slug(track, what='track')}/rollback",
                          json={"reason": reason, "expected_champion": expected_champion},
                          idempotency_key=idempotency_key)

    def load_champion(self, track: str, *, artefacts_root: str | os.PathLike[str] | None = None,
                      cache_dir: str | os.PathLike[str] | None = None,
                      refresh_seconds: float = 5.0,
                      loader: Callable[[Path], Any] | None = None,
                      external_loader: ExternalLoader | None = None) -> ChampionPredictor:
        """``track``'s champion, loaded and following promotions (see ``load_champion``)."""
        root = shared_artefacts_root(artefacts_root)
        return ChampionPredictor(self, track, artefacts_root=root, cache_dir=cache_dir,
                                 refresh_seconds=refresh_seconds, loader=loader,
                                 external_loader=external_loader)

    # -- external versions

    def register_external(self, track: str, *, label: str, train_cutoff: dt.date | str,
                          description: str = "", uri: str | None = None,
                          digest: str | None = None,
                          metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """Register a model trained anywhere as a challenger (idempotent on the submission)."""
        body = {"track": validate_slug(track, what="track"), "label": label,
                "train_cutoff": str(train_cutoff), "description": description, "uri": uri,
                "digest": digest, "metadata": metadata or {}}
        return self._call("POST", "/external-versions", json=body)

    def submit_predictions(self, version_id: str, day: dt.date | str,
                           scores: Mapping[str, float] | Any, *,
                           as_parquet: bool = False) -> dict[str, Any]:
        """Submit an external version's scores for ``day`` (whose returns have not landed):
        a mapping asset -> score, or a frame with columns ``asset`` and ``score``. Parquet is
        the compact body for thousands of assets."""
        path = f"/versions/{validate_version_id(version_id)}/predictions/{day}"
        assets, values = _asset_scores(scores)
        if as_parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq

            sink = pa.BufferOutputStream()
            pq.write_table(pa.table({"asset": pa.array(assets, pa.string()),
                                     "score": pa.array(values, pa.float64())}), sink)
            return self._call("PUT", path, content=sink.getvalue().to_pybytes(),
                              headers={"Content-Type": "application/vnd.apache.parquet"})
        return self._call("PUT", path, content=_scores_json(assets, values),
                          headers={"Content-Type": "application/json"})

    def submissions(self, version_id: str) -> list[dict[str, Any]]:
        """The days an external version submitted, and when each arrived."""
        return self._call("GET", f"/versions/{validate_version_id(version_id)}/predictions"
                          )["items"]

    # -- plumbing

    def _call(self, method: str, path: str, *, idempotency_key: str | None = None,
              headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        headers = dict(headers or {})
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return self._json(self._send(method, path, headers=headers, **kwargs))

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise errors.Unavailable(f"the registry at {self.url} did not answer in time",
                                     code="registry_timeout") from None
        except httpx.TransportError as exc:
            raise errors.Unavailable(f"cannot reach the registry at {self.url} "
                                     f"({type(exc).__name__})",
                                     code="registry_unreachable") from None

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise error_from_problem(response)
        return response.json()


def _asset_scores(scores: Mapping[str, float] | Any) -> tuple[list[str], list[float]]:
    if isinstance(scores, Mapping):
        return [str(a) for a in scores], [float(v) for v in scores.values()]
    return [str(a) for a in scores["asset"]], [float(v) for v in scores["score"]]


def _scores_json(assets: list[str], values: list[float]) -> bytes:
    """``{"scores": {...}}`` with every pair kept (a repeated asset reaches the server, which
    refuses it, rather than silently replacing the first) and NaN/inf written out as such."""
    pairs = ",".join(f"{json.dumps(a)}:{json.dumps(v)}" for a, v in zip(assets, values,
                                                                      strict=True))
    return ('{"scores":{' + pairs + "}}").encode("utf-8")
