"""What a track trains and scores: its data source (the synthetic market or a panel), the
model specs the zoo trains and where it trains them, and how the shadow job scores them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from registry.config.section import Section
from registry.ids import LABEL_PATTERN
from scorer.settings import GateSettings, PortfolioSettings
from trainer.config import MarketConfig, PanelConfig


class ResourceRequest(Section):
    """What one spec's training task asks of a Ray node (Ray's own names; ``memory`` in bytes).
    Only the ray executor reads it; it is no part of a version's fingerprint."""

    num_cpus: float = Field(1, gt=0)
    num_gpus: float = Field(0, ge=0)
    memory: int | None = Field(None, gt=0)


class ModelSpec(Section):
    """One zoo entry: a named overlay over the base trainer config (checked by the zoo)."""

    name: str = Field(..., pattern=rf"^{LABEL_PATTERN}$")
    status: Literal["active", "retired"] = "active"
    description: str = ""
    overrides: dict[str, Any] = Field(default_factory=dict)
    resources: ResourceRequest | None = None  # the keys it sets replace zoo.resources'


class ZooConfig(Section):
    """Where the zoo trains: one spec after another here (``local``), or as Ray tasks on a
    cluster (``ray``) whose nodes all see ``artefacts_root`` at the same path."""

    executor: Literal["local", "ray"] = "local"
    address: str | None = None  # unset: $RAY_ADDRESS, the cluster started here, or a new one
    resources: ResourceRequest = ResourceRequest()
    kill_grace_seconds: float = Field(
        15.0, ge=0, le=3600, description="a trainer still running this long after its "
        "time_budget_seconds is killed with its whole process group")


class SyntheticData(Section):
    """The bundled synthetic market (its parameters are the ``market`` section)."""

    kind: Literal["synthetic"] = "synthetic"


DataConfig = Annotated[SyntheticData | PanelConfig, Field(discriminator="kind")]


class TrackConfig(Section):
    """A further track: its own data, and optionally its own specs, portfolio and gate (unset:
    the top-level ones)."""

    name: str = Field(..., pattern=rf"^{LABEL_PATTERN}$")
    data: DataConfig = SyntheticData()
    market: MarketConfig | None = None
    model_specs: tuple[ModelSpec, ...] | None = None
    portfolio: PortfolioSettings | None = None
    gate: GateSettings | None = None

    @model_validator(mode="after")
    def _market_for_synthetic(self) -> TrackConfig:
        if self.market is not None and self.data.kind != "synthetic":
            raise ValueError(f"track {self.name!r}: 'market' is for a synthetic track; this "
                             "track's data is a panel")
        return self


class ShadowConfig(Section):
    schedule: str = Field("*/5 * * * *", description="cron (UTC) or @every <N>s|m|h of the job")
    in_serve: bool = Field(True, description="run the scheduled job inside `registry serve`")
    feed_days_per_tick: int = Field(0, ge=0, description="days the scheduled job lets land")
    lease_seconds: int = Field(30, ge=5, description="a runner's lease expires when not renewed "
                               "for this long; its holder renews it every third of it")
    portfolio: PortfolioSettings = PortfolioSettings()
