"""Model specs: named overlays of allowlisted knobs on the base trainer configuration.

A spec may change how a model is built and fitted, never what it is judged on. ``ALLOWED``
lists the knobs a spec may set and why each is safe; ``FORBIDDEN`` says why the others are not.
A spec must not be able to buy a better score by look-ahead, a different data set, a different
window or cheaper costs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from registry.config import ModelSpec, PodiumConfig, ResourceRequest
from registry.errors import ConfigError, describe_invalid_fields
from registry.ids import build_version_id, fingerprint
from trainer import TRAINER_CODE_VERSION
from trainer.config import TrainConfig

ALLOWED: dict[str, str] = {
    "label": "names the version; changes nothing it is judged on",
    "model": "the model family (linear or mlp)",
    "hidden_sizes": "the MLP's width and depth",
    "forward_days": "the training target's horizon; every version is still judged on the same "
    "daily net return, so a slow or fast horizon shows its turnover and cost",
    "residual_momentum": "a feature family computed from data up to the prediction day",
    "xsec_demean": "cross-sectional normalisation of features and target",
    "learning_rate": "optimiser step size",
    "weight_decay": "optimiser regularisation",
    "epochs": "how long to fit (early stopping still applies)",
    "batch_size": "optimiser batch size",
    "early_stopping_patience": "how long to wait for validation improvement",
    "seed": "the model's random initialisation",
    "extra_features": "numeric columns of the track's own panel, known at each day's close and "
    "computed by the same code in training and serving; part of the fingerprint",
}

FORBIDDEN: dict[str, str] = {
    "market": "changes the data every version is scored on",
    "train_cutoff": "moves the training window (and could reach into the shadow days)",
    "train_days": "changes the training window",
    "validation_days": "changes the evaluation split",
    "time_budget_seconds": "operational; set it for the whole zoo in the trainer section",
}


@dataclass(frozen=True)
class ResolvedSpec:
    spec: ModelSpec
    train: TrainConfig
    dataset_fingerprint: str
    fingerprint: str
    version_id: str

    @property
    def train_cutoff(self) -> dt.date:
        assert self.train.train_cutoff is not None
        return self.train.train_cutoff


def check_overrides(spec: ModelSpec) -> None:
    """Fail loud on any key outside the allowlist, naming the key, the spec and what is allowed."""
    for key in spec.overrides:
        if key not in ALLOWED:
            why = f" ({FORBIDDEN[key]})" if key in FORBIDDEN else ""
            raise ConfigError(
                f"spec {spec.name!r}: override {key!r} is not allowed{why}; allowed keys: "
                f"{', '.join(ALLOWED)}",
                code="override_not_allowed",
            )


def check_all_specs(config: PodiumConfig) -> None:
    for spec in config.model_specs:
        check_overrides(spec)
        overlay(config, spec, train_cutoff=dt.date(2000, 1, 3))


def find_spec(config: PodiumConfig, name: str) -> ModelSpec:
    for spec in config.model_specs:
        if spec.name == name:
            return spec
    known = ", ".join(s.name for s in config.model_specs) or "(none configured)"
    raise ConfigError(f"unknown spec {name!r}; known specs: {known}", code="unknown_spec")


def active_specs(config: PodiumConfig) -> list[ModelSpec]:
    return [spec for spec in config.model_specs if spec.status == "active"]


def overlay(config: PodiumConfig, spec: ModelSpec, *, train_cutoff: dt.date) -> TrainConfig:
    """The base trainer config with the spec's overrides applied and the cutoff pinned."""
    check_overrides(spec)
    merged: dict[str, Any] = config.trainer.model_dump()
    merged.update(spec.overrides)
    if "label" not in spec.overrides:
        merged["label"] = spec.name  # every spec gets distinct version ids
    merged["train_cutoff"] = config.trainer.train_cutoff or train_cutoff
    try:
        return TrainConfig.model_validate(merged)
    except ValidationError as exc:
        problems = describe_invalid_fields(exc.errors())
        raise ConfigError(f"spec {spec.name!r}: invalid overrides: {problems}",
                          code="invalid_overrides") from None


def resolve_spec(config: PodiumConfig, spec: ModelSpec, *, train_cutoff: dt.date,
                 dataset_fingerprint: str) -> ResolvedSpec:
    """Everything that identifies the version this spec would train."""
    train = overlay(config, spec, train_cutoff=train_cutoff)
    digest = fingerprint(train.identity(), dataset_fingerprint=dataset_fingerprint,
                         code_version=TRAINER_CODE_VERSION)
    version_id = build_version_id(train.label, train.train_cutoff, digest)
    return ResolvedSpec(spec, train, dataset_fingerprint, digest, version_id)


def resources_for(config: PodiumConfig, spec: ModelSpec) -> ResourceRequest:
    """What the spec's training task asks of a node: ``zoo.resources``, with the keys the spec's
    own ``resources`` sets replacing them."""
    base = config.zoo.resources
    if spec.resources is None:
        return base
    return base.model_copy(update={key: getattr(spec.resources, key)
                                   for key in spec.resources.model_fields_set})
