import os
import subprocess
import sys
from pathlib import Path

import pytest

from registry import migrations
from tests.conftest import REPO, imported_by

BIN = Path(sys.executable).parent


def cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PODIUM_")}
    full_env.update(env or {})
    return subprocess.run([str(BIN / "registry"), *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "podium.yaml").write_text("database:\n  url: sqlite:///state/podium.db\n")
    return tmp_path


def test_migrate_then_versions_on_a_brand_new_sqlite_file(workdir: Path) -> None:
    assert not (workdir / "state").exists()
    first = cli("migrate", cwd=workdir)
    assert first.returncode == 0, first.stderr
    assert f"upgraded empty → {migrations.head_revision()}" in first.stdout
    assert (workdir / "state" / "podium.db").is_file()
    again = cli("migrate", cwd=workdir)
    assert again.returncode == 0 and "already at" in again.stdout
    listing = cli("versions", cwd=workdir)
    assert listing.returncode == 0, listing.stderr
    assert "0 version(s)" in listing.stdout
    assert cli("audit", cwd=workdir).returncode == 0


def test_unmigrated_database_says_what_to_do(workdir: Path) -> None:
    result = cli("versions", cwd=workdir)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: the database has no Podium schema yet: run " \
                                    "`registry migrate`"


def test_user_errors_are_one_line_without_traceback(workdir: Path) -> None:
    (workdir / "bad.yaml").write_text("gate:\n  alfa: 1\n")
    bad_config = cli("versions", "--config", "bad.yaml", cwd=workdir)
    assert bad_config.returncode == 2
    assert "bad.yaml:2: unknown key 'alfa' in gate" in bad_config.stderr
    assert "Traceback" not in bad_config.stderr + bad_config.stdout
    cli("migrate", cwd=workdir)
    bad_state = cli("versions", "--state", "king", cwd=workdir)
    assert bad_state.returncode == 2 and "'king' is not one of" in bad_state.stderr
    usage = cli("versions", "--bogus", cwd=workdir)
    assert usage.returncode == 2 and "No such option" in usage.stderr


@pytest.mark.parametrize("command", [[], ["migrate"], ["versions"], ["audit"]])
def test_help_everywhere(command: list[str], tmp_path: Path) -> None:
    result = cli(*command, "--help", cwd=tmp_path)
    assert result.returncode == 0 and "Usage:" in result.stdout


def test_help_and_rest_commands_start_without_the_database_layer(tmp_path: Path) -> None:
    """``--help`` and the commands that go through the REST API import neither SQLAlchemy nor
    Alembic: they start in a fraction of the time a database command takes."""
    loaded, done = imported_by(
        "from registry.cli import app\nfrom registry.console import run\n"
        "print([run(app, ['--help']), run(app, ['external', 'submissions', "
        "'v1-a-20240101-0123abcd', '--url', 'http://127.0.0.1:9', '--token', 't'])])",
        ["sqlalchemy", "sqlmodel", "alembic", "pyarrow"], cwd=tmp_path)
    assert loaded == [] and done.stdout.splitlines()[-2] == "[0, 1]"
    assert "cannot reach the registry at http://127.0.0.1:9" in done.stderr, done.stderr


def test_runs_from_the_repo_with_sample_yaml_env_override(tmp_path: Path) -> None:
    env = {"PODIUM_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    assert cli("migrate", cwd=REPO, env=env).returncode == 0
    assert (tmp_path / "x.db").is_file()
