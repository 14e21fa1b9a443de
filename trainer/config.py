"""The trainer's typed configuration: what one training run needs, validated on the way in.

``TrainConfig`` holds the knobs that define a model (the part a version's fingerprint covers);
``RunSettings`` holds where and how to run it (paths, logging), which never change the weights.
The resolved JSON the zoo hands to ``python -m trainer`` is ``ResolvedConfig``:
``{"train": {...}, "run": {...}}``.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SLUG = r"^[a-z0-9][a-z0-9._-]{0,47}$"
URL_SCHEMES = ("s3://",)  # a panel path that names an object store (registry.storage.SCHEMES)



class PanelConfig(BaseModel):
    """Where a panel lives and how it is read (``path`` is never written to)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["panel"] = "panel"
    name: str = Field(..., pattern=r"^[a-z0-9][a-z0-9._-]{0,47}$", description="dataset slug")
    path: str = Field(..., min_length=1, description="partition directory, .parquet or .csv; "
                      "or an s3:// URL of either, read with the object_store settings")
    format: Literal["parquet", "csv"] | None = Field(
        None, description="parquet or csv; None: from the path (a directory is parquet)")
    min_assets: int = Field(10, ge=2, description="fewer assets on a day: the day is skipped")

    @property
    def resolved_format(self) -> str:
        if self.format is not None:
            return self.format
        return "csv" if self.path.lower().endswith(".csv") else "parquet"

    def description(self) -> dict:
        """What identifies the source in a fingerprint (not its path: a copy elsewhere is the
        same data)."""
        return {"kind": "panel", "name": self.name, "format": self.resolved_format}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MarketConfig(_Strict):
    """The synthetic market: a deterministic function of these parameters (and nothing else)."""

    name: str = Field("synth", pattern=SLUG, description="dataset slug")
    seed: int = Field(7, ge=0, description="seed of the generator")
    n_assets: int = Field(500, ge=10, le=20_000, description="assets in the cross-section")
    n_days: int = Field(2500, ge=60, le=20_000, description="trading days the feed holds in all")
    initial_days: int = Field(2000, ge=40, description="days landed when the dataset is created")
    start_date: dt.date = Field(dt.date(2016, 1, 4), description="first trading day")
    # Factor dynamics. Strengths are expected daily returns (in return units) per cross-sectional
    # standard deviation of the signal; each drifts over time around its base value.
    market_vol: float = Field(0.01, gt=0, le=0.2, description="daily vol of the market factor")
    beta_dispersion: float = Field(0.4, ge=0, le=2, description="cross-sectional sd of betas")
    idio_vol: float = Field(0.02, gt=0, le=0.5, description="median daily idiosyncratic vol")
    tail_dof: float = Field(4.0, gt=2, le=1000, description="Student-t degrees of freedom")
    reversal_strength: float = Field(
        0.0012, ge=0, le=0.05, description="next-day reversal of the last day's residual return"
    )
    momentum_strength: float = Field(
        0.0001, ge=0, le=0.05, description="continuation of the total return t-120..t-21"
    )
    residual_momentum_strength: float = Field(
        0.0015, ge=0, le=0.05, description="continuation of the residual return t-60..t-1"
    )
    strength_drift: float = Field(
        0.3, ge=0, le=2, description="log-sd of the slow drift of every strength"
    )
    drift_halflife_days: float = Field(
        250.0, gt=1, le=100_000, description="half-life of the strengths' drift"
    )

    @model_validator(mode="after")
    def _initial_within_total(self) -> MarketConfig:
        if self.initial_days > self.n_days:
            raise ValueError(
                f"initial_days ({self.initial_days}) cannot exceed n_days ({self.n_days})"
            )
        return self


class TrainConfig(_Strict):
    """Everything that decides a model's weights (with the data it is trained on)."""

    label: str = Field("base", pattern=SLUG, description="version label: <label>-<date>-<fp>")
    model: Literal["linear", "mlp"] = "linear"
    hidden_sizes: tuple[int, ...] = Field((32, 16), min_length=1, max_length=6)
    forward_days: int = Field(5, ge=1, le=120, description="target horizon in trading days")
    residual_momentum: bool = False
    xsec_demean: bool = True
    learning_rate: float = Field(1e-3, gt=0, le=1)
    weight_decay: float = Field(1e-4, ge=0, le=1)
    epochs: int = Field(20, ge=1, le=10_000)
    batch_size: int = Field(4096, ge=1, le=1_000_000)
    seed: int = Field(0, ge=0)
    time_budget_seconds: float = Field(300, gt=0, le=86_400)
    train_days: int = Field(750, ge=20, description="days of history before the cutoff used")
    validation_days: int = Field(120, ge=5, description="last days before the cutoff held out")
    early_stopping_patience: int = Field(3, ge=1)
    train_cutoff: dt.date | None = Field(
        None, description="last day of data the model may see; None: the last landed day"
    )
    market: MarketConfig = MarketConfig()
    panel: PanelConfig | None = Field(None, description="the user's panel; None: the market")
    extra_features: tuple[str, ...] = Field(
        (), max_length=32, description="numeric panel columns used as extra features")

    @model_validator(mode="after")
    def _window_fits(self) -> TrainConfig:
        if self.extra_features and self.panel is None:
            raise ValueError("extra_features need a panel source; the synthetic market has no "
                             "extra columns")
        if len(set(self.extra_features)) != len(self.extra_features):
            raise ValueError(f"extra_features name a column twice: {list(self.extra_features)}")
        if any(size < 1 for size in self.hidden_sizes):
            raise ValueError("hidden_sizes must all be positive")
        if self.validation_days >= self.train_days:
            raise ValueError(
                f"validation_days ({self.validation_days}) must be below train_days "
                f"({self.train_days})"
            )
        return self

    def identity(self) -> dict:
        """The fields a version's fingerprint covers (the time budget is operational only).

        A panel's identity is its description (not its path) and its content, which the
        dataset fingerprint covers; a synthetic market's is its parameters, as before.
        """
        identity = self.model_dump(mode="json", exclude={"time_budget_seconds", "panel",
                                                          "extra_features"})
        if self.panel is not None:
            identity["market"] = self.panel.description()
        if self.extra_features:
            identity["extra_features"] = list(self.extra_features)
        return identity


class WandbSettings(_Strict):
    mode: Literal["offline", "online", "disabled"] = "offline"
    project: str = "podium"
    entity: str | None = None


class RunSettings(_Strict):
    """Where and how to run: never part of a fingerprint."""

    datasets_root: str = Field(..., description="directory holding <slug>/<fingerprint>/")
    spec_name: str | None = None
    overrides: dict[str, object] = Field(default_factory=dict)
    experiment: str = "podium"
    wandb: WandbSettings = WandbSettings()


class ResolvedConfig(_Strict):
    train: TrainConfig
    run: RunSettings
