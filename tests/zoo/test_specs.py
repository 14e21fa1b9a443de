import datetime as dt

import pytest

from registry.config import ModelSpec, load_config
from registry.errors import ConfigError
from tests.conftest import REPO
from zoo.specs import ALLOWED, FORBIDDEN, check_all_specs, find_spec, overlay, resolve_spec

CUTOFF = dt.date(2024, 6, 28)


def sample_config(path=REPO / "sample.yaml"):
    return load_config(path, environ={})


def test_every_shipped_spec_is_valid() -> None:
    for path in (REPO / "sample.yaml", REPO / "examples" / "tiny.yaml"):
        config = sample_config(path)
        check_all_specs(config)
        ids = {resolve_spec(config, s, train_cutoff=CUTOFF, dataset_fingerprint="d").version_id
               for s in config.model_specs}
        assert len(ids) == len(config.model_specs)  # every spec has distinct version ids


@pytest.mark.parametrize("key", sorted(FORBIDDEN))
def test_disallowed_keys_fail_loud(key: str) -> None:
    config = sample_config()
    spec = ModelSpec(name="cheat", overrides={key: 1})
    with pytest.raises(ConfigError) as info:
        overlay(config, spec, train_cutoff=CUTOFF)
    message = str(info.value)
    assert f"spec 'cheat': override '{key}' is not allowed ({FORBIDDEN[key]})" in message
    assert "allowed keys: " + ", ".join(ALLOWED) in message
    assert info.value.code == "override_not_allowed"


def test_unknown_key_and_bad_value() -> None:
    config = sample_config()
    with pytest.raises(ConfigError, match="override 'fowrard_days' is not allowed; allowed"):
        overlay(config, ModelSpec(name="typo", overrides={"fowrard_days": 3}),
                train_cutoff=CUTOFF)
    with pytest.raises(ConfigError, match="spec 'bad': invalid overrides: forward_days: Input "
                                          "should be less than or equal to 120"):
        overlay(config, ModelSpec(name="bad", overrides={"forward_days": 500}),
                train_cutoff=CUTOFF)


def test_overlay_keeps_the_window_and_defaults_the_label() -> None:
    config = sample_config()
    train = overlay(config, ModelSpec(name="h60", overrides={"forward_days": 60}),
                    train_cutoff=CUTOFF)
    assert (train.forward_days, train.label, train.train_cutoff) == (60, "h60", CUTOFF)
    assert train.train_days == config.trainer.train_days
    assert train.market == config.market
    resolved = resolve_spec(config, ModelSpec(name="h60", overrides={"forward_days": 60}),
                            train_cutoff=CUTOFF, dataset_fingerprint="d")
    assert resolved.version_id.startswith("h60-20240628-")
    assert resolved.fingerprint.startswith(resolved.version_id[-8:])


def test_unknown_spec_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown spec 'nope'; known specs: linear-5d, resmom"):
        find_spec(sample_config(), "nope")
