"""Where Podium keeps things: the database, the artefact store (a directory or a bucket) and
how long ``registry gc`` lets artefacts stay."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from registry.config.section import Section


class DatabaseConfig(Section):
    url: str = Field("sqlite:///var/podium.db", description="SQLAlchemy URL")
    pool_timeout_s: float = Field(
        10.0, gt=0, le=600, description="a request waits this long for a free connection of "
        "the server's pool (PostgreSQL: 10 + 20 overflow), then answers 503 database_busy")


class ObjectStoreConfig(Section):
    """Artefacts in a bucket: ``artefacts_root: s3://bucket/prefix`` fills ``url``. Unset keys
    come from the standard ``AWS_*`` environment variables (``AWS_ENDPOINT_URL``,
    ``AWS_REGION``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ...)."""

    url: str | None = Field(None, pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")
    endpoint: str | None = Field(None, description="an S3-compatible store's URL")
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    timeout_seconds: float = Field(30.0, gt=0, le=600,
                                   description="give up on an unanswered store after this")
    local_dir: Path = Field(Path("var/artefacts"), description="where datasets, training runs "
                            "and caches stay on this machine when artefacts are in a bucket")


class RetentionConfig(Section):
    """What ``registry gc`` removes (it never removes a champion, the version a rollback would
    restore, or a version still shadowed)."""

    retired_days: float = Field(30.0, ge=0, description="bundles of versions retired longer "
                                "than this")
    staging_hours: float = Field(24.0, ge=0, description="uncommitted uploads and training "
                                 "runs' local bundles, older than this")
