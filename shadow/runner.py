"""``shadow run``: for each configured track, predict every pending (version, day) on that track's
own data, then settle every day whose outcome has landed.

Each track is scored from its own source only (:mod:`registry.landing`), under its own lease, with
its own portfolio settings; a version registered on a track the configuration does not name is
not scored at all (it is listed, with the reason). Per track: the landed days are listed, the
days the run needs are read (from ``WARMUP_DAYS - 1`` days before the first day some version has
yet to settle: a feature row uses that much history and no more), their digests checked against
those recorded when they were first used (:mod:`registry.history`), and the versions run through
the pipeline (:mod:`shadow.pipeline`). A predicted day ``t`` settles once day ``t+1`` has
landed: gross, turnover, cost and net go into ``shadow_score`` once per (version, day), ever.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine

from registry.config import PodiumConfig
from registry.errors import InvalidData, PodiumError
from registry.history import check_history
from registry.landing import track_source
from registry.storage import artefact_store
from shadow.lease import (
    SHADOW_LEASE,
    LeaseHeartbeat,
    acquire_lease,
    lease_holder,
    new_holder,
    release_lease,
)
from shadow.pipeline import Pipeline
from shadow.predictions import PredictionStore
from shadow.selection import (
    first_unsettled,
    settled_so_far,
    settled_through,
    shadowed_versions,
    unconfigured_versions,
)
from shadow.settle import VersionOutcome
from shadow.view import MarketView, Universe
from trainer.compilation_cache import enable_compilation_cache
from trainer.features import WARMUP_DAYS
from trainer.panel import PanelError

__all__ = ["ShadowRun", "TrackRun", "VersionOutcome", "lease_name", "run_shadow", "run_track",
           "shadowed_versions"]

ScoringProgress = Callable[[str, int, int], None]  # (version id, done, total)
RENEW_FRACTION = 0.25  # renew the lease once this fraction of it has passed (it cannot lapse)


@dataclass
class TrackRun:
    """What a run did on one track."""

    track: str
    ran: bool
    detail: str
    last_landed: dt.date | None = None
    versions: list[VersionOutcome] = field(default_factory=list)
    universe: Universe = field(default_factory=Universe)
    error: PodiumError | None = None  # bad or rewritten data: nothing scored on this track
    lease_busy: bool = False  # nothing done: another runner holds this track's lease

    @property
    def settled(self) -> int:
        return sum(v.settled for v in self.versions)


@dataclass
class ShadowRun:
    """What a run did on every track (``versions``: all tracks' outcomes together)."""

    tracks: list[TrackRun] = field(default_factory=list)
    unconfigured: dict[str, list[str]] = field(default_factory=dict)  # track -> version ids

    @property
    def ran(self) -> bool:
        return any(track.ran for track in self.tracks)

    @property
    def detail(self) -> str:
        return "; ".join(f"{t.track}: {t.detail}" if len(self.tracks) > 1 else t.detail
                         for t in self.tracks)

    @property
    def last_landed(self) -> dt.date | None:
        return self.tracks[0].last_landed if self.tracks else None

    @property
    def versions(self) -> list[VersionOutcome]:
        return [outcome for track in self.tracks for outcome in track.versions]

    @property
    def settled(self) -> int:
        return sum(track.settled for track in self.tracks)

    @property
    def lease_busy(self) -> bool:
        """Nothing was done on any track because other runners hold their leases."""
        return bool(self.tracks) and all(track.lease_busy for track in self.tracks)

    @property
    def errors(self) -> list[PodiumError]:
        return [track.error for track in self.tracks if track.error is not None]


def lease_name(track: str) -> str:
    """Each track has its own lease, so tracks are scored independently."""
    return f"{SHADOW_LEASE}:{track}"


def run_shadow(config: PodiumConfig, engine: Engine, *, holder: str | None = None,
               progress: ScoringProgress | None = None) -> ShadowRun:
    """Score everything pending on every configured track, each on its own data."""
    enable_compilation_cache(config.artefacts_root / "cache" / "jax")
    holder = holder or new_holder()
    result = ShadowRun()
    for name in config.track_names:
        result.tracks.append(run_track(config.for_track(name), engine, holder=holder,
                                       progress=progress))
    result.unconfigured = unconfigured_versions(engine, list(config.track_names))
    return result


def run_track(config: PodiumConfig, engine: Engine, *, holder: str,
              progress: ScoringProgress | None = None) -> TrackRun:
    """Score ``config.track``'s pending days; stand down if another runner holds its lease."""
    track, lease_seconds, name = config.track, config.shadow.lease_seconds, lease_name(
        config.track)
    if acquire_lease(engine, holder=holder, seconds=lease_seconds, name=name) is None:
        other = lease_holder(engine, name)
        return TrackRun(track, False, "another runner holds the shadow lease"
                        f"{f' ({other.describe()})' if other else ''}; nothing done",
                        lease_busy=True)
    renewed = time.monotonic()
    heartbeat = LeaseHeartbeat(engine, holder=holder, seconds=lease_seconds, name=name).start()

    def keep_lease() -> bool:
        nonlocal renewed
        if heartbeat.lost:
            return False
        if time.monotonic() - renewed > RENEW_FRACTION * lease_seconds:
            if acquire_lease(engine, holder=holder, seconds=lease_seconds, name=name) is None:
                return False
            renewed = time.monotonic()
        return True

    try:
        try:
            source = track_source(config)
            landed = source.landed_days()
            if not landed:
                return TrackRun(track, True, "no market days have landed yet")
            versions = shadowed_versions(engine, track)
            through = settled_through(versions, landed, settled_so_far(engine, versions))
            first = min(first_unsettled(versions, landed, through), len(landed) - 1)
            start = max(0, first - (WARMUP_DAYS - 1))
            window = source.window(landed[start], extra_features=None, landed=landed)
            digests = source.digests(landed[start])
            check_history(engine, track=track, digests={
                day: digests[day] for day in landed[start:] if day in digests})
        except PanelError as exc:
            return _refused(track, InvalidData(str(exc)))
        except PodiumError as exc:  # rewritten history
            return _refused(track, exc)
        view = MarketView(window, min_assets=source.min_assets)
        universe = view.universe(first - start)
        run = TrackRun(track, True, "ok", view.last_day, universe=universe)
        started: list[VersionOutcome] = []
        artefacts = artefact_store(config)
        with Pipeline(view, engine, PredictionStore(artefacts, "shadow/predictions"),
                artefacts_root=artefacts, portfolio=config.shadow.portfolio,
                bundle_cache=config.bundle_cache_root,
                through=through, settles_from=first - start, universe=universe) as pipeline:
            work = []
            for version in versions:  # which days, and each model verified and restored
                if not keep_lease():
                    pipeline.abandon()
                    return _lost(run, started)
                work.append(pipeline.prepare(version))
            for done, item in enumerate(pipeline.schedule(work)):
                if progress is not None:
                    progress(item.version.version_id, done, len(work))
                if not keep_lease():
                    pipeline.abandon()
                    return _lost(run, started)
                started.append(item.outcome)
                pipeline.shadow(item)
        if progress is not None and versions:
            progress("", len(versions), len(versions))
        run.versions = [item.outcome for item in work]
        return run
    finally:
        heartbeat.stop()
        release_lease(engine, holder=holder, name=name)


def _refused(track: str, error: PodiumError) -> TrackRun:
    return TrackRun(track, False, f"refused: {error.detail}", error=error)


def _lost(run: TrackRun, started: list[VersionOutcome]) -> TrackRun:
    run.ran, run.detail, run.versions = False, "lost the shadow lease mid-run; stopped", started
    return run
