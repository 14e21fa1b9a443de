"""Bundles trained once per session on the tiny market; each test registers copies in its db."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from registry import migrations, store
from registry.config import PodiumConfig, load_config
from registry.db import make_engine, read_session, write_session
from tests.conftest import built_once
from tests.zoo.conftest import tiny_config
from zoo.runner import run_spec
from zoo.specs import active_specs

SPECS = ("linear-5d", "resmom")


def _train_through_zoo(config: PodiumConfig, url: str, specs: tuple[str, ...]
                      ) -> list[tuple[str, str, str]]:
    """``specs`` of ``config`` trained and registered through the zoo on a fresh database at
    ``url``; returns [(version_id, fingerprint, spec)]."""
    engine = make_engine(url)
    migrations.upgrade(engine)
    for spec in active_specs(config):
        if spec.name in specs:
            assert run_spec(config, spec, engine=engine).status == "registered"
    with read_session(engine) as session:
        versions = [(v.version_id, v.fingerprint, v.spec_name)
                    for v in store.list_versions(session)]
    engine.dispose()
    return versions


def train_tiny(base: Path, specs: tuple[str, ...]) -> tuple[Path, list[tuple[str, str, str]]]:
    """(artefacts root, [(version_id, fingerprint, spec)]): ``specs`` of examples/tiny.yaml
    trained through the zoo under ``base``."""
    url = f"sqlite:///{base / 'template.db'}"
    config = tiny_config(url, base / "artefacts")
    versions = _train_through_zoo(config, url, specs)
    return base / "artefacts", versions


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> tuple[Path, list[tuple[str, str, str]]]:
    """(artefacts root, [(version_id, fingerprint, spec)]) with two real tiny bundles, trained
    once per run (every xdist worker reads the same ones)."""
    return built_once(tmp_path_factory, "trained", lambda base: train_tiny(base, SPECS))


def registered(config: PodiumConfig, db_url: str, versions: list[tuple[str, str, str]]):
    """Yield ``(config, engine, version ids)`` with ``versions`` registered on the track."""
    engine = make_engine(db_url)
    migrations.upgrade(engine)
    for version_id, fingerprint, spec in versions:
        with write_session(engine) as session:
            store.register_version(session, track=config.track, version_id=version_id,
                                   fingerprint=fingerprint, artefacts_root=config.artefacts_root,
                                   actor="test", spec_name=spec)
    try:
        yield config, engine, [v[0] for v in versions]
    finally:
        engine.dispose()


def artefacts_copy(template, tmp_path):
    """A test's own copy of the trained artefacts (bundles and datasets, not the run index)."""
    root = tmp_path / "artefacts"
    shutil.copytree(template, root, ignore=shutil.ignore_patterns("runs", "runs.parquet"))
    return root


@pytest.fixture
def shadow_env(trained, db_url, tmp_path):
    """A migrated database with the trained versions registered, and its own artefacts copy."""
    template, versions = trained
    root = artefacts_copy(template, tmp_path)
    config = tiny_config(db_url, root)
    yield from registered(config, db_url, versions)


WRITE_PANEL = Path(__file__).resolve().parents[2] / "examples" / "own-data" / "write_panel.py"
OWN_DATA = WRITE_PANEL.parent / "podium.yaml"
PANEL_ASSETS, PANEL_DAYS, PANEL_LANDED = 60, 560, 460


def land_panel(path: Path, through_day: int, *extra: str) -> str:
    """Land the example panel's days up to ``through_day``, as the user's pipeline would."""
    done = subprocess.run([sys.executable, str(WRITE_PANEL), "--out", str(path), "--assets",
                           str(PANEL_ASSETS), "--days", str(PANEL_DAYS), "--through-day",
                           str(through_day), *extra], capture_output=True, text=True, check=True)
    return done.stdout


@pytest.fixture(scope="session")
def landed_panel(tmp_path_factory) -> Callable[[Path, int], None]:
    """``landed_panel(path, through_day)`` leaves at ``path`` what
    ``land_panel(path, through_day)`` writes there (the pipeline is deterministic): a copy of
    the days landed once per run."""

    def _landed(path: Path, through_day: int) -> None:
        def land(base: Path) -> Path:
            land_panel(base / "panel", through_day)
            return base / "panel"

        shutil.copytree(built_once(tmp_path_factory, f"panel-{through_day}", land), path)

    return _landed


def upload_panel(panel: Path, bucket, prefix: str, uploaded: set[str] | None = None
                 ) -> set[str]:
    """Land ``panel``'s partition files not in ``uploaded`` in ``bucket`` under ``prefix/``,
    one whole object each (as the writer's rename, a reader never sees half a day); returns
    every file landed so far."""
    uploaded = set() if uploaded is None else uploaded
    fresh = [f.relative_to(panel).as_posix() for f in sorted(panel.glob("date=*/*.parquet"))]
    fresh = [name for name in fresh if name not in uploaded]
    with ThreadPoolExecutor(max_workers=8) as pool:  # hundreds of days: a round trip each
        list(pool.map(lambda name: bucket.put(f"{prefix}/{name}", (panel / name).read_bytes()),
                      fresh))
    return uploaded | set(fresh)


def panel_config(db_url: str, root: Path, panel: Path) -> PodiumConfig:
    config = load_config(OWN_DATA, environ={"PODIUM_DATABASE_URL": db_url,
                                            "PODIUM_ARTEFACTS_ROOT": str(root)})
    data = config.data.model_copy(update={"path": str(panel)})
    trainer = config.trainer.model_copy(update={"panel": data})
    return config.model_copy(update={"data": data, "trainer": trainer})


def train_on_panel(base: Path, specs: tuple[str, ...]
                   ) -> tuple[Path, Path, list[tuple[str, str, str]]]:
    """(panel, artefacts root, versions): ``specs`` trained through the zoo on the panel landed
    at ``base / "panel"``."""
    url = f"sqlite:///{base / 'template.db'}"
    config = panel_config(url, base / "artefacts", base / "panel")
    versions = _train_through_zoo(config, url, specs)
    return base / "panel", base / "artefacts", versions


@pytest.fixture(scope="session")
def panel_specs_trained(tmp_path_factory, landed_panel
                        ) -> tuple[Path, Path, list[tuple[str, str, str]]]:
    """The example panel's first days, and its ``linear-5d`` and ``revision`` specs trained on
    them (see :func:`train_on_panel`), once per run."""

    def build(base: Path) -> tuple[Path, Path, list[tuple[str, str, str]]]:
        landed_panel(base / "panel", PANEL_LANDED)
        return train_on_panel(base, ("linear-5d", "revision"))

    return built_once(tmp_path_factory, "panel-trained", build)


@pytest.fixture(scope="session")
def panel_trained(panel_specs_trained) -> tuple[Path, Path, list[tuple[str, str, str]]]:
    """The example panel's first days, and its ``revision`` spec (an extra feature column)
    trained on them: :func:`panel_specs_trained` with that version only."""
    panel, artefacts, versions = panel_specs_trained
    return panel, artefacts, [v for v in versions if v[2] == "revision"]


@pytest.fixture
def panel_env(panel_trained, db_url, tmp_path):
    """A migrated database with the panel's version registered; its own panel and artefacts."""
    template_panel, template, versions = panel_trained
    root, panel = artefacts_copy(template, tmp_path), tmp_path / "panel"
    shutil.copytree(template_panel, panel)
    config = panel_config(db_url, root, panel)
    yield from registered(config, db_url, versions)
