from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from registry.config import PodiumConfig, load_config
from registry.errors import ConfigError
from tests.conftest import REPO


def _write(tmp_path: Path, text: str, name: str = "podium.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_sample_yaml_loads_and_validates() -> None:
    config = load_config(REPO / "sample.yaml", environ={})
    assert config.track == "equities-daily"
    assert {s.name for s in config.model_specs} >= {"resmom", "fast-1d", "h60", "mlp-blend"}
    assert any(s.status == "retired" for s in config.model_specs)
    assert config.database.url == f"sqlite:///{REPO / 'var' / 'podium.db'}"
    assert config.artefacts_root == REPO / "var" / "artefacts"


def _field_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    paths = []
    for name, field in model.model_fields.items():
        if name == "source":
            continue
        paths.append(prefix + name)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths += _field_paths(annotation, f"{prefix}{name}.")
    return paths


def test_sample_yaml_documents_every_key() -> None:
    data = yaml.safe_load((REPO / "sample.yaml").read_text())
    missing = []
    for dotted in _field_paths(PodiumConfig):
        if dotted.startswith(("trainer.market", "trainer.panel", "trainer.extra_features")):
            continue  # the data is set once, at the top level; extra features by a spec
        node = data
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                missing.append(dotted)
                break
            node = node[part]
    assert missing == []


def test_tiny_example_loads() -> None:
    config = load_config(REPO / "examples" / "tiny.yaml", environ={})
    assert config.trainer.market == config.market
    assert config.market.n_assets < 200


def test_malformed_yaml_names_file_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "gate:\n  alpha: 0.05\n   min_days: 3\n")
    with pytest.raises(ConfigError, match=r"podium\.yaml:3:\d+: malformed YAML") as info:
        load_config(path, environ={})
    assert info.value.exit_code == 2


def test_unknown_key_names_key_place_line_and_valid_keys(tmp_path: Path) -> None:
    path = _write(tmp_path, "track: t1\ngate:\n  alpha: 0.05\n  alfa: 0.1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    message = str(info.value)
    assert "podium.yaml:4: unknown key 'alfa' in gate" in message
    assert "valid keys: alpha, margin, min_days, mode, horizon_days, min_dsr" in message


def test_unknown_key_inside_a_spec(tmp_path: Path) -> None:
    path = _write(tmp_path, "model_specs:\n  - name: a\n    overides: {}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'overides' in model_specs\.0; "
                                          r"valid keys: name, status, description, overrides"):
        load_config(path, environ={})


def test_wrong_type_says_what_was_expected(tmp_path: Path) -> None:
    path = _write(tmp_path, "gate:\n  min_days: plenty\n")
    with pytest.raises(ConfigError, match=r"podium\.yaml:2: gate\.min_days: Input should be a "
                                          r"valid integer.*'plenty'"):
        load_config(path, environ={})


def test_cross_field_checks(tmp_path: Path) -> None:
    path = _write(tmp_path, "model_specs:\n  - name: a\n  - name: a\n")
    with pytest.raises(ConfigError, match="spec name 'a' is used twice"):
        load_config(path, environ={})
    path = _write(tmp_path, "trainer:\n  market: {seed: 3}\n")
    with pytest.raises(ConfigError, match="set the market once"):
        load_config(path, environ={})


def test_the_pool_timeout_and_the_kill_grace_are_configured_and_bounded(tmp_path: Path) -> None:
    from registry.api import create_app

    path = _write(tmp_path, "database:\n  url: postgresql+psycopg://podium@db.invalid/podium\n"
                            "  pool_timeout_s: 2.5\n")
    engine = create_app(load_config(path, environ={})).state.engine
    try:
        assert engine.pool.timeout() == 2.5
    finally:
        engine.dispose()
    for section, key, bad in (("database", "pool_timeout_s", "0"),
                              ("database", "pool_timeout_s", "601"),
                              ("zoo", "kill_grace_seconds", "-1")):
        path = _write(tmp_path, f"{section}:\n  {key}: {bad}\n")
        with pytest.raises(ConfigError, match=rf"podium\.yaml:2: {section}\.{key}: "):
            load_config(path, environ={})
    path = _write(tmp_path, "zoo:\n  kill_grace_seconds: 2\n")
    assert load_config(path, environ={}).zoo.kill_grace_seconds == 2.0


def test_not_a_mapping_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(_write(tmp_path, "- 1\n- 2\n"), environ={})
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "nope.yaml", environ={})


def test_resolution_order_and_relative_paths(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PODIUM_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="no configuration found"):
        load_config(environ={})
    _write(tmp_path, "track: from-sample\n", "sample.yaml")
    assert load_config(environ={}).track == "from-sample"
    _write(tmp_path, "track: from-podium\n", "podium.yaml")
    assert load_config(environ={}).track == "from-podium"
    sub = tmp_path / "conf"
    sub.mkdir()
    env_file = _write(sub, "track: from-env\nartefacts_root: data\ndatabase:\n"
                      "  url: sqlite:///db/p.db\n", "x.yaml")
    monkeypatch.setenv("PODIUM_CONFIG", str(env_file))
    config = load_config()
    assert config.track == "from-env"
    assert config.artefacts_root == sub / "data"
    assert config.database.url == f"sqlite:///{sub / 'db' / 'p.db'}"
    assert load_config(tmp_path / "podium.yaml").track == "from-podium"  # --config wins


def test_environment_overrides(tmp_path: Path) -> None:
    path = _write(tmp_path, "database:\n  url: sqlite:///a.db\nartefacts_root: a\n")
    config = load_config(path, environ={"PODIUM_DATABASE_URL": "postgresql+psycopg://u@h/db",
                                        "PODIUM_ARTEFACTS_ROOT": "/srv/podium"})
    assert config.database.url == "postgresql+psycopg://u@h/db"
    assert config.artefacts_root == Path("/srv/podium")


def test_tracks_each_get_their_data_specs_portfolio_and_gate(tmp_path: Path) -> None:
    path = _write(tmp_path, """
track: home
model_specs:
  - name: base-spec
tracks:
  - name: panel-desk
    data: {kind: panel, name: desk-panel, path: panels/desk, min_assets: 30}
    model_specs:
      - name: desk-spec
        overrides: {extra_features: [revision]}
    portfolio: {quantile: 0.1, cost_bps: 3.0}
    gate: {min_days: 15}
  - name: synth-desk
    market: {name: other, seed: 4}
""")
    config = load_config(path, environ={})
    assert config.track_names == ["home", "panel-desk", "synth-desk"]
    desk = config.for_track("panel-desk")
    assert desk.track == "panel-desk" and desk.tracks == ()
    assert desk.trainer.panel is not None and desk.trainer.panel.min_assets == 30
    assert desk.trainer.panel.path == str(tmp_path / "panels" / "desk")  # beside the file
    assert [s.name for s in desk.model_specs] == ["desk-spec"]
    assert desk.shadow.portfolio.quantile == 0.1 and desk.gate.min_days == 15
    assert config.gate_for("panel-desk").min_days == 15 and config.gate_for("x").min_days == 60
    synth = config.for_track("synth-desk")
    assert synth.trainer.market.name == "other" and synth.trainer.panel is None
    assert [s.name for s in synth.model_specs] == ["base-spec"]  # inherited
    assert config.for_track("home").trainer.panel is None


@pytest.mark.parametrize(("text", "message"), [
    ("track: a\ntracks:\n  - name: a\n", "track 'a' is the top-level track"),
    ("tracks:\n  - name: b\n  - name: b\n", "track 'b' is listed twice"),
    ("tracks:\n  - name: b\n    data: {kind: panel, name: p, path: x}\n    market: {seed: 1}\n",
     "'market' is for a synthetic track"),
    ("data: {kind: feed}\n", "data: Input tag 'feed' found using 'kind' does not match"),
    ("data: {kind: panel, path: x}\n", "data.panel.name: Field required"),
    ("trainer: {extra_features: [x]}\n", "extra_features need a panel source"),
])
def test_bad_track_configuration_is_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text), environ={})
    assert caught.value.code == "invalid_config" and message in caught.value.detail


def test_an_unknown_track_is_named(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, "track: a\n"), environ={})
    with pytest.raises(ConfigError, match="track 'zz' is not configured") as caught:
        config.for_track("zz")
    assert caught.value.code == "unknown_track"
