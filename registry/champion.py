"""A consumer's champion: ``load_champion(track)`` returns a ``ChampionPredictor``
(``predict(features)``, or ``score_days(returns)`` straight from a DataFrame of daily returns).

It resolves the track's champion, fetches its bundle (from the shared artefacts root when given
one, else over the API into a local cache keyed by digest), checks it against the digest the
registry holds, loads it with ``trainer.load_model`` and, at most every ``refresh_seconds`` (a
conditional GET that costs one indexed query and no body when nothing changed), notices a
promotion and swaps to the new champion atomically. A new champion that fails to load is
reported and the current one keeps serving. It talks to the registry through
:class:`registry.client.Client`, which also serves ``load_champion`` and this class under its
own name.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry import errors
from registry.ids import validate_slug, validate_version_id

if TYPE_CHECKING:  # pragma: no cover
    from registry.client import Client

log = logging.getLogger("registry.client")  # the name consumers configure
ExternalLoader = Callable[[dict[str, Any]], Any]  # an external champion's metadata -> predictor


def shared_artefacts_root(value: str | os.PathLike[str] | None) -> Path | None:
    """``value``, else ``$PODIUM_ARTEFACTS_ROOT``: the directory bundles are read from in
    place (None: download them over the API)."""
    root = value if value is not None else os.environ.get("PODIUM_ARTEFACTS_ROOT")
    return Path(root) if root else None


def _default_loader(bundle: Path) -> Any:
    from trainer import load_model

    return load_model(bundle)


class ChampionPredictor:
    """A track's champion, loaded, that follows promotions: ``predict(features) -> scores``."""

    def __init__(self, client: Client, track: str, *, artefacts_root: Path | None,
                 cache_dir: str | os.PathLike[str] | None = None, refresh_seconds: float = 5.0,
                 loader: Callable[[Path], Any] | None = None,
                 external_loader: ExternalLoader | None = None) -> None:
        from registry.bundle_cache import default_cache_dir

        self.client, self.track = client, validate_slug(track, what="track")
        self.artefacts_root = Path(artefacts_root) if artefacts_root is not None else None
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.bytes_downloaded = 0  # bundle bytes fetched over the API so far
        self.refresh_seconds = refresh_seconds
        self._loader = loader or _default_loader
        self._external_loader = external_loader
        self._lock = threading.Lock()
        self._etag: str | None = None
        self._checked_at = 0.0
        self.last_error: errors.PodiumError | None = None
        champion, self._etag = client.champion_if_changed(self.track, None)
        assert champion is not None
        self._current = self._load(champion)  # (version_id, predictor): swapped as one
        self._checked_at = time.monotonic()

    def close(self) -> None:
        """Close the connection to the registry (the loaded model stays usable)."""
        self.client.close()

    def __enter__(self) -> ChampionPredictor:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def version_id(self) -> str:
        return self._current[0]

    @property
    def predictor(self) -> Any:
        return self._current[1]

    def predict(self, features: Any) -> Any:
        """Scores from the current champion (re-resolved at most every ``refresh_seconds``)."""
        return self._serving()[1].predict(features)

    def score_days(self, returns: Any, days: Any = None) -> Any:
        """Scores (index: day, columns: assets) of ``days`` (default: the last day given) from
        a wide DataFrame of daily returns (index: dates, columns: assets), by the current
        champion, its features computed by the training code from returns on or before each
        day. ``scores.attrs["version_id"]`` names the champion that answered; a promotion is
        picked up as by ``predict``."""
        version_id, predictor = self._serving()
        scores = predictor.score_days(returns, days)
        scores.attrs["version_id"] = version_id
        return scores

    def _serving(self) -> tuple[str, Any]:
        """The champion to answer with: ``(version_id, predictor)``, taken together."""
        if time.monotonic() - self._checked_at >= self.refresh_seconds:
            self.refresh()
        return self._current

    def refresh(self) -> bool:
        """Ask the registry now; swap if the champion changed. True when it swapped."""
        with self._lock:
            self._checked_at = time.monotonic()
            try:
                champion, etag = self.client.champion_if_changed(self.track, self._etag)
                if champion is None or champion["version_id"] == self._current[0]:
                    self._etag = etag
                    return False
                loaded = self._load(champion)
            except Exception as exc:  # a bad new champion must not stop the current one
                error = exc if isinstance(exc, errors.PodiumError) else errors.IntegrityFailure(
                    f"cannot load the new champion of {self.track}: {exc}")
                self.last_error = error
                log.warning("keeping champion %s of %s: %s", self._current[0], self.track,
                            error.detail)
                return False
            self._current, self._etag, self.last_error = loaded, etag, None
            log.info("track %s: now serving champion %s", self.track, loaded[0])
            return True

    def _load(self, champion: dict[str, Any]) -> tuple[str, Any]:
        from registry.integrity import bundle_dir, verify_bundle

        version_id = validate_version_id(champion["version_id"])
        if champion.get("kind") == "external":  # no bundle: the caller knows how to load it
            if self._external_loader is None:
                raise errors.ConfigError(
                    f"champion {version_id} of {self.track} is an external version (artefact "
                    f"{champion['provenance'].get('uri') or champion['provenance'].get('digest')}"
                    "): pass external_loader= to load it from its provenance",
                    code="external_loader_required")
            return version_id, self._external_loader(champion)
        if self.artefacts_root is None:  # no shared disk: download it over the API
            from registry.bundle_cache import cached_bundle

            bundle, transferred = cached_bundle(self.client, version_id=version_id,
                                                digest=champion["bundle_digest"],
                                                cache_dir=self.cache_dir)
            self.bytes_downloaded += transferred
            return version_id, self._loader(bundle)
        bundle = bundle_dir(self.artefacts_root, track=self.track, version_id=version_id)
        expected = self.artefacts_root / champion["bundle_path"]
        if expected.resolve() != bundle.resolve():
            raise errors.IntegrityFailure(f"champion {version_id}: bundle path "
                                          f"{champion['bundle_path']!r} is not where it belongs")
        verify_bundle(bundle, expected_digest=champion["bundle_digest"])
        return version_id, self._loader(bundle)


def load_champion(track: str, *, url: str | None = None, token: str | None = None,
                  artefacts_root: str | os.PathLike[str] | None = None,
                  cache_dir: str | os.PathLike[str] | None = None,
                  refresh_seconds: float = 5.0,
                  loader: Callable[[Path], Any] | None = None,
                  external_loader: ExternalLoader | None = None) -> ChampionPredictor:
    """A predictor for ``track``'s champion that swaps to a new champion without a restart.

    ``url``/``token`` default to ``$PODIUM_URL``/``$PODIUM_TOKEN``; ``artefacts_root`` to
    ``$PODIUM_ARTEFACTS_ROOT`` (a shared directory the bundles live on). Without one, the
    bundle is downloaded over the API into ``cache_dir`` (default ``$PODIUM_BUNDLE_CACHE``,
    else ``~/.cache/podium/bundles``), once per digest, and verified. An external champion
    has no bundle: ``external_loader(champion)`` gets its metadata (``version_id``,
    ``provenance`` with the artefact's ``uri``, ``digest`` and ``metadata``, ``description``)
    and returns an object with ``predict``; without one, an external champion is refused.
    """
    from registry.client import Client  # that module imports this one

    client = Client(url, token)
    try:
        return client.load_champion(track, artefacts_root=artefacts_root, cache_dir=cache_dir,
                                    refresh_seconds=refresh_seconds, loader=loader,
                                    external_loader=external_loader)
    except BaseException:
        client.close()
        raise
