"""Drive Alembic from code: ``registry migrate`` and the tests use these, never ``create_all``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from registry.db import translate_db_errors

SCRIPT_LOCATION = Path(__file__).resolve().parent.parent / "alembic"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    return config


def _run(engine: Engine, action, revision: str) -> None:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        action(config, revision)


def upgrade(engine: Engine, revision: str = "head") -> None:
    _run(engine, command.upgrade, revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    _run(engine, command.downgrade, revision)


def upgrade_to_head(engine: Engine) -> tuple[str | None, str | None]:
    """Upgrade to the newest schema; ``(revision before, revision after)``."""
    with translate_db_errors():
        before = current_revision(engine)
        upgrade(engine)
        return before, current_revision(engine)


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
