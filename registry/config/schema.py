"""The whole configuration file: its sections, the checks that bind them (one market, unique
names, the top-level track not listed again) and each track's view of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from registry.config.section import Section
from registry.config.server import ServerConfig
from registry.config.storage import DatabaseConfig, ObjectStoreConfig, RetentionConfig
from registry.config.tracks import (
    DataConfig,
    ModelSpec,
    ShadowConfig,
    SyntheticData,
    TrackConfig,
    ZooConfig,
)
from registry.errors import ConfigError
from registry.ids import LABEL_PATTERN
from scorer.settings import GateSettings
from trainer.config import MarketConfig, PanelConfig, TrainConfig, WandbSettings


class PodiumConfig(Section):
    """The whole file. ``source`` is where it came from (not a key in the file)."""

    database: DatabaseConfig = DatabaseConfig()
    artefacts_root: Path = Field(Path("var/artefacts"), description="a directory, or "
                                 "s3://bucket/prefix (then object_store.local_dir is local)")
    object_store: ObjectStoreConfig = ObjectStoreConfig()
    track: str = Field("equities-daily", pattern=rf"^{LABEL_PATTERN}$")
    market: MarketConfig = MarketConfig()
    data: DataConfig = SyntheticData()
    tracks: tuple[TrackConfig, ...] = ()
    trainer: TrainConfig = TrainConfig()
    wandb: WandbSettings = WandbSettings()
    model_specs: tuple[ModelSpec, ...] = ()
    zoo: ZooConfig = ZooConfig()
    shadow: ShadowConfig = ShadowConfig()
    gate: GateSettings = GateSettings()
    server: ServerConfig = ServerConfig()
    retention: RetentionConfig = RetentionConfig()
    source: Path | None = Field(None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _bucket_root(cls, data: Any) -> Any:
        """``artefacts_root: s3://…`` keeps bundles and predictions in the bucket; the local
        root becomes ``object_store.local_dir``."""
        root = data.get("artefacts_root") if isinstance(data, dict) else None
        if not (isinstance(root, str) and "://" in root):
            return data
        section = data.get("object_store") or {}
        if not isinstance(section, dict):
            return data
        local = section.get("local_dir", "var/artefacts")
        return {**data, "artefacts_root": local,
                "object_store": {**{k: v for k, v in section.items() if k != "local_dir"},
                                 "url": root, "local_dir": local}}

    @field_validator("model_specs")
    @classmethod
    def _unique_spec_names(cls, specs: tuple[ModelSpec, ...]) -> tuple[ModelSpec, ...]:
        seen: set[str] = set()
        for spec in specs:
            if spec.name in seen:
                raise ValueError(f"spec name {spec.name!r} is used twice; names must be unique")
            seen.add(spec.name)
        return specs

    @field_validator("tracks")
    @classmethod
    def _unique_track_names(cls, tracks: tuple[TrackConfig, ...]) -> tuple[TrackConfig, ...]:
        names = [track.name for track in tracks]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"track {name!r} is listed twice; track names must be unique")
        return tracks

    @model_validator(mode="after")
    def _one_market(self) -> PodiumConfig:
        misplaced = {"market": "set the market once, in the top-level 'market' section",
                     "panel": "set a panel once, in the top-level 'data' section",
                     "extra_features": "choose extra_features in a spec's overrides"}
        for key, where in misplaced.items():
            if key in self.trainer.model_fields_set:
                raise ValueError(f"{where}, not under 'trainer'")
        if any(track.name == self.track for track in self.tracks):
            raise ValueError(f"track {self.track!r} is the top-level track; list only the "
                             "further tracks under 'tracks'")
        panel = self.data if isinstance(self.data, PanelConfig) else None
        return self.model_copy(update={"trainer": self.trainer.model_copy(
            update={"market": self.market, "panel": panel})})

    @property
    def track_names(self) -> list[str]:
        """Every configured track: the top-level one first."""
        return [self.track, *(track.name for track in self.tracks)]

    def gate_for(self, track: str) -> GateSettings:
        """The gate settings of ``track`` (the top-level ones for a track not configured)."""
        return self.for_track(track).gate if track in self.track_names else self.gate

    def for_track(self, name: str) -> PodiumConfig:
        """This configuration as one track sees it: its data, specs, portfolio and gate in the
        top-level places every part reads (and no further tracks)."""
        if name == self.track:
            return self.model_copy(update={"tracks": ()})
        track = next((t for t in self.tracks if t.name == name), None)
        if track is None:
            raise ConfigError(f"track {name!r} is not configured (tracks: "
                              f"{', '.join(self.track_names)})", code="unknown_track")
        market = track.market or self.market
        panel = track.data if isinstance(track.data, PanelConfig) else None
        shadow = self.shadow.model_copy(update={"portfolio": track.portfolio
                                                or self.shadow.portfolio})
        return self.model_copy(update={
            "track": track.name, "data": track.data, "market": market, "tracks": (),
            "model_specs": self.model_specs if track.model_specs is None else track.model_specs,
            "shadow": shadow, "gate": track.gate or self.gate,
            "trainer": self.trainer.model_copy(update={"market": market, "panel": panel})})

    @property
    def datasets_root(self) -> Path:
        return self.artefacts_root / "datasets"

    @property
    def models_root(self) -> Path:
        return self.artefacts_root / "models"

    @property
    def bundle_cache_root(self) -> Path:
        """Verified local copies of bundles kept in a bucket, one directory per digest (the
        shadow runner loads from them, the server sends them)."""
        return self.artefacts_root / "cache" / "bundles"
