"""What has landed for a track: its data source, and the days present in it.

:func:`landed_days` is the one answer to "which days have landed for track T" (and
:func:`last_landed` to "which is the last"): the shadow runner settles from it, and whatever
must refuse look-ahead (a prediction for a day whose outcome is already known) asks it too.
"""

from __future__ import annotations

import datetime as dt

from registry.config import PodiumConfig
from registry.errors import InvalidData
from trainer.panel import PanelError
from trainer.sources import PanelSource, SyntheticSource, open_source


def track_source(config: PodiumConfig, track: str | None = None
                 ) -> SyntheticSource | PanelSource:
    """The data source of ``track`` (None: the top-level one)."""
    scoped = config.for_track(track or config.track)
    return open_source(scoped.datasets_root, scoped.trainer, store_settings=scoped.object_store)


def landed_days(config: PodiumConfig, track: str | None = None) -> list[dt.date]:
    """The days that have landed for ``track``, oldest first (a panel that breaks its
    contract is :class:`~registry.errors.InvalidData`, naming file, row and problem)."""
    try:
        return track_source(config, track).landed_days()
    except PanelError as exc:
        raise InvalidData(str(exc)) from None


def last_landed(config: PodiumConfig, track: str | None = None) -> dt.date | None:
    """The last day that has landed for ``track`` (None before the first)."""
    days = landed_days(config, track)
    return days[-1] if days else None
