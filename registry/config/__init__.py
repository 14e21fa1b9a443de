"""Podium's configuration: one YAML file, loaded once at the entry point into frozen models.

``load_config`` finds and checks the file (``--config PATH``, else ``$PODIUM_CONFIG``, else
``./podium.yaml``, else ``./sample.yaml``) and returns a ``PodiumConfig``; every part imports
what it reads from here. The schema is split by what it configures, as `sample.yaml` documents
it:

- ``schema``: the whole file (``PodiumConfig``), the checks across sections, a track's view;
- ``tracks``: tracks and their data sources, model specs, the zoo, the shadow job;
- ``storage``: the database, the artefact store, retention;
- ``server``: the service, its Host and CORS rules, webhooks;
- ``loading``: resolution, YAML parsing, paths, environment overrides and error messages.
"""

from __future__ import annotations

from registry.config.loading import (
    MAX_CONFIG_BYTES,
    SEARCH_ORDER,
    find_config,
    load_config,
    parse_config,
)
from registry.config.schema import PodiumConfig
from registry.config.server import (
    LOOPBACK_HOSTS,
    ServerConfig,
    WebhookConfig,
    is_loopback,
    literal_ip,
)
from registry.config.storage import DatabaseConfig, ObjectStoreConfig, RetentionConfig
from registry.config.tracks import (
    DataConfig,
    ModelSpec,
    ResourceRequest,
    ShadowConfig,
    SyntheticData,
    TrackConfig,
    ZooConfig,
)

__all__ = [
    "LOOPBACK_HOSTS", "MAX_CONFIG_BYTES", "SEARCH_ORDER", "DataConfig", "DatabaseConfig",
    "ModelSpec", "ObjectStoreConfig", "PodiumConfig", "ResourceRequest", "RetentionConfig",
    "ServerConfig", "ShadowConfig", "SyntheticData", "TrackConfig", "WebhookConfig",
    "ZooConfig", "find_config", "is_loopback", "literal_ip", "load_config", "parse_config",
]
