"""A track's data source: the bundled synthetic market or a user's panel, behind one interface.

Both give the landed days, wide daily returns (index dates, columns assets) from a day on, the
extra feature columns a model asks for, a digest per landed day (and those a training window
reads) and the dataset fingerprint of a training window. The synthetic market keeps its
fingerprint (its generation parameters); a panel's fingerprint is a digest of the training
window's content plus the source's description, so the same data gives the same version id and
different data a different one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from trainer.config import MarketConfig, TrainConfig
from trainer.dataset import dataset_fingerprint, open_feed, read_metadata
from trainer.features import WARMUP_DAYS
from trainer.panel import Panel, PanelConfig, PanelError, read_panel
from trainer.panel import landed_days as panel_landed_days

__all__ = ["DataWindow", "PanelError", "PanelSource", "SyntheticSource", "open_source",
           "window_start"]


@dataclass(frozen=True)
class DataWindow:
    """Wide returns and the extra columns asked for, on the same days and assets."""

    returns: pd.DataFrame
    extras: dict[str, pd.DataFrame]


def window_start(landed: list[dt.date], cutoff: dt.date, train_days: int) -> dt.date:
    """The first day a training window ending at ``cutoff`` reads: ``train_days`` row days and
    the ``WARMUP_DAYS - 1`` days of history the first row's features need."""
    last = max(k for k, day in enumerate(landed) if day <= cutoff)
    return landed[max(0, last - train_days + 1 - (WARMUP_DAYS - 1))]


class SyntheticSource:
    """The bundled market under ``<datasets_root>/<name>/<fingerprint>/``."""

    kind = "synthetic"
    min_assets = 2

    def __init__(self, datasets_root: str | Path, market: MarketConfig) -> None:
        self.datasets_root, self.market = Path(datasets_root), market
        self.feed = open_feed(datasets_root, market)

    def landed_days(self) -> list[dt.date]:
        return self.feed.landed_days()

    def window(self, start: dt.date | None = None, end: dt.date | None = None,
               extra_features: tuple[str, ...] | None = (), *,
               landed: list[dt.date] | None = None) -> DataWindow:
        """Returns from ``start`` through ``end``; the market has no extra columns.
        ``landed`` is ``landed_days()`` when the caller has just listed them."""
        if extra_features:
            raise PanelError("the synthetic market has no extra feature columns")
        return DataWindow(self.feed.returns(start, end, landed=landed), {})

    def training_window(self, cutoff: dt.date, train: TrainConfig) -> DataWindow:
        return self.window(end=cutoff)  # the whole history, as always: same weights as before

    def digests(self, start: dt.date | None = None) -> dict[dt.date, str]:
        """Each landed day's SHA-256 (of its partition file, recorded when it landed)."""
        partitions = read_metadata(self.feed.path)["partitions"]
        return {dt.date.fromisoformat(day): digest for day, digest in partitions.items()}

    def training_digests(self, cutoff: dt.date, train: TrainConfig) -> dict[dt.date, str]:
        """The digests of the days a training window ending at ``cutoff`` reads (all of them
        through ``cutoff``)."""
        return {day: digest for day, digest in self.digests().items() if day <= cutoff}

    def fingerprint(self, cutoff: dt.date, train: TrainConfig) -> str:
        return dataset_fingerprint(self.market)

    def describe(self, cutoff: dt.date, train: TrainConfig) -> dict:
        """What the bundle's metadata says of the data: what it is, never where it lies (a
        sealed bundle is the same wherever its data was read from)."""
        return {"kind": "synthetic", "name": self.market.name,
                "fingerprint": dataset_fingerprint(self.market)}


class PanelSource:
    """A user's panel (see :mod:`trainer.panel`); read, never written. ``store_settings``:
    the ``object_store`` section a panel in a bucket is read with (None: ``AWS_*``)."""

    kind = "panel"

    def __init__(self, config: PanelConfig, store_settings: Any = None) -> None:
        self.config, self.store_settings = config, store_settings
        self.min_assets = config.min_assets
        self._read: tuple[dt.date | None, Panel] | None = None

    def landed_days(self) -> list[dt.date]:
        return panel_landed_days(self.config, store_settings=self.store_settings)

    def panel(self, start: dt.date | None = None) -> Panel:
        """The panel from ``start`` on, read once per source object (a run's view)."""
        if self._read is not None and (self._read[0] is None or (
                start is not None and self._read[0] <= start)):
            return self._read[1]
        panel = read_panel(self.config, start=start, store_settings=self.store_settings)
        self._read = (start, panel)
        return panel

    def window(self, start: dt.date | None = None, end: dt.date | None = None,
               extra_features: tuple[str, ...] | None = (), *,
               landed: list[dt.date] | None = None) -> DataWindow:
        """Returns from ``start`` through ``end`` over the assets that reported in that span,
        and the extra columns named (None: every numeric extra column). ``landed`` is
        unused: the panel lists its partitions as it reads them."""
        panel = self.panel(start)
        if extra_features is None:
            extra_features = tuple(panel.extras)
        span = slice(None if start is None else pd.Timestamp(start),
                     None if end is None else pd.Timestamp(end))
        missing = [name for name in extra_features if name not in panel.extras]
        if missing:
            offered = ", ".join(sorted(panel.extras)) or "none"
            raise PanelError(f"{self.config.path}: extra feature column(s) "
                             f"{', '.join(missing)} are not numeric columns of the panel "
                             f"(numeric extra columns: {offered})")
        returns = panel.returns.loc[span]
        keep = returns.columns[returns.notna().any(axis=0)]  # assets reporting in the window
        return DataWindow(returns[keep],
                          {name: panel.extras[name].loc[span, keep] for name in extra_features})

    def training_window(self, cutoff: dt.date, train: TrainConfig) -> DataWindow:
        start = window_start(self.landed_days(), cutoff, train.train_days)
        return self.window(start, cutoff, train.extra_features)

    def digests(self, start: dt.date | None = None) -> dict[dt.date, str]:
        """Each landed day's content digest (from ``start`` on, when given)."""
        return self.panel(start).digests

    def training_digests(self, cutoff: dt.date, train: TrainConfig) -> dict[dt.date, str]:
        """The digests of the days a training window ending at ``cutoff`` reads."""
        start = window_start(self.landed_days(), cutoff, train.train_days)
        return {day: digest for day, digest in sorted(self.digests().items())
                if start <= day <= cutoff}

    def fingerprint(self, cutoff: dt.date, train: TrainConfig) -> str:
        return _digest({"source": self.config.description(),
                        "days": self._window_digests(cutoff, train)})

    def describe(self, cutoff: dt.date, train: TrainConfig) -> dict:
        window = self.training_window(cutoff, train)
        days = self._window_digests(cutoff, train)
        panel = self.panel()
        rows = int(window.returns.notna().to_numpy().sum())
        return {**self.config.description(), "rows": rows, "assets": int(window.returns.shape[1]),
                "first_day": days[0][0], "last_day": days[-1][0],
                "extra_features": list(train.extra_features),
                "extra_columns": sorted(panel.extras),
                "content_digest": _digest(days),
                "fingerprint": self.fingerprint(cutoff, train)}

    def _window_digests(self, cutoff: dt.date, train: TrainConfig) -> list[list[str]]:
        return [[day.isoformat(), digest]
                for day, digest in self.training_digests(cutoff, train).items()]


def open_source(datasets_root: str | Path, train: TrainConfig, *, store_settings: Any = None
                ) -> SyntheticSource | PanelSource:
    """The source ``train`` names: its panel when it has one, else the synthetic market
    (``store_settings``: see :class:`PanelSource`)."""
    if train.panel is not None:
        return PanelSource(train.panel, store_settings)
    return SyntheticSource(datasets_root, train.market)


def _digest(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
                          ).hexdigest()
