"""Podium's configuration: one YAML file, loaded once at the entry point into frozen models.

Resolution: ``--config PATH``, else ``$PODIUM_CONFIG``, else ``./podium.yaml``, else
``./sample.yaml``. Relative paths inside a file are relative to that file.
``PODIUM_DATABASE_URL`` and ``PODIUM_ARTEFACTS_ROOT`` override the file. Every error names the
file and, where it can, the line, the key and what was expected.

One module, longer than most, because it is one schema: every section of the file (tracks and
their data, server, webhooks, shadow, gate) and the cross-section checks that bind them read
top to bottom here, as `sample.yaml` documents them.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from registry.errors import ConfigError
from registry.ids import LABEL_PATTERN
from scorer.settings import GateSettings, PortfolioSettings
from trainer.config import MarketConfig, PanelConfig, TrainConfig, WandbSettings

SEARCH_ORDER = ("podium.yaml", "sample.yaml")
MAX_CONFIG_BYTES = 1 << 20


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseConfig(_Section):
    url: str = Field("sqlite:///var/podium.db", description="SQLAlchemy URL")


class ResourceRequest(_Section):
    """What one spec's training task asks of a Ray node (Ray's own names; ``memory`` in bytes).
    Only the ray executor reads it; it is no part of a version's fingerprint."""

    num_cpus: float = Field(1, gt=0)
    num_gpus: float = Field(0, ge=0)
    memory: int | None = Field(None, gt=0)


class ObjectStoreConfig(_Section):
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


class ModelSpec(_Section):
    """One zoo entry: a named overlay over the base trainer config (checked by the zoo)."""

    name: str = Field(..., pattern=rf"^{LABEL_PATTERN}$")
    status: Literal["active", "retired"] = "active"
    description: str = ""
    overrides: dict[str, Any] = Field(default_factory=dict)
    resources: ResourceRequest | None = None  # the keys it sets replace zoo.resources'


class ZooConfig(_Section):
    """Where the zoo trains: one spec after another here (``local``), or as Ray tasks on a
    cluster (``ray``) whose nodes all see ``artefacts_root`` at the same path."""

    executor: Literal["local", "ray"] = "local"
    address: str | None = None  # unset: $RAY_ADDRESS, the cluster started here, or a new one
    resources: ResourceRequest = ResourceRequest()


class SyntheticData(_Section):
    """The bundled synthetic market (its parameters are the ``market`` section)."""

    kind: Literal["synthetic"] = "synthetic"


DataConfig = Annotated[SyntheticData | PanelConfig, Field(discriminator="kind")]


class TrackConfig(_Section):
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


class ShadowConfig(_Section):
    schedule: str = Field("*/5 * * * *", description="cron (UTC) or @every <N>s|m|h of the job")
    in_serve: bool = Field(True, description="run the scheduled job inside `registry serve`")
    feed_days_per_tick: int = Field(0, ge=0, description="days the scheduled job lets land")
    lease_seconds: int = Field(30, ge=5, description="a runner's lease expires when not renewed "
                               "for this long; its holder renews it every third of it")
    portfolio: PortfolioSettings = PortfolioSettings()


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def literal_ip(host: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host or "")
    except ValueError:
        return None


class WebhookConfig(_Section):
    url: str = Field(..., description="http:// or https:// URL that receives the events")
    secret_env: str = Field(..., description="environment variable holding the HMAC secret")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - raises on a port that is not a number in range
        except ValueError as exc:
            raise ValueError(f"not a URL ({exc})") from None
        if parts.scheme not in ("http", "https") or not host:
            raise ValueError("must be an http:// or https:// URL with a host")
        return url


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    public_reads: bool = False
    max_body_bytes: int = Field(65_536, ge=1024)
    cors_origins: tuple[str, ...] = ()
    webhooks: tuple[WebhookConfig, ...] = ()
    webhooks_allow_private: bool = Field(
        True, description="false: refuse webhook URLs whose host is, or resolves to, a private, "
        "loopback or link-local address")
    allowed_hosts: tuple[str, ...] | None = Field(
        None, description="Host header values served (\"*\" any, \"*.example.com\" its "
        "subdomains); default: the loopback names when `registry serve` binds loopback, else any")
    header_timeout_s: float = Field(10.0, gt=0, le=300,
                                    description="a client must send its request head within this")
    keep_alive_timeout_s: int = Field(5, ge=1, le=300,
                                      description="idle keep-alive connections close after this")
    max_connections: int = Field(1000, ge=1,
                                 description="connections served at once; more get 503")

    @model_validator(mode="after")
    def _no_private_webhooks(self) -> ServerConfig:
        if self.webhooks_allow_private:
            return self
        for index, hook in enumerate(self.webhooks):
            address = literal_ip(urlsplit(hook.url).hostname)
            if address is not None and not address.is_global:
                raise ValueError(f"webhooks.{index}.url {hook.url!r} is a private, loopback or "
                                 "link-local address and webhooks_allow_private is false")
        return self

    @property
    def hosts_allowed(self) -> tuple[str, ...]:
        """The Host header values served (``*``: any)."""
        return ("*",) if self.allowed_hosts is None else self.allowed_hosts

    def bound_to(self, host: str) -> ServerConfig:
        """These settings for a server listening on ``host``: without ``allowed_hosts``, a
        loopback listener answers only to the loopback names (DNS rebinding gets a 400)."""
        allowed = self.allowed_hosts
        if allowed is None and is_loopback(host):
            allowed = LOOPBACK_HOSTS
        return self.model_copy(update={"host": host, "allowed_hosts": allowed})


class RetentionConfig(_Section):
    """What ``registry gc`` removes (it never removes a champion, the version a rollback would
    restore, or a version still shadowed)."""

    retired_days: float = Field(30.0, ge=0, description="bundles of versions retired longer "
                                "than this")
    staging_hours: float = Field(24.0, ge=0, description="uncommitted uploads and training "
                                 "runs' local bundles, older than this")


class PodiumConfig(_Section):
    """The whole file. ``source`` is where it came from (not a key in the file)."""

    database: DatabaseConfig = DatabaseConfig()
    artefacts_root: Path = Field(Path("var/artefacts"), description="a directory, or "
                                 "s3://bucket/prefix (then object_store.local_dir is local)")
    object_store: ObjectStoreConfig = ObjectStoreConfig()
    track: str = Field("equities-daily", pattern=rf"^{LABEL_PATTERN}$")
    market: MarketConfig = MarketConfig()
    data: DataConfig = SyntheticData()
    tracks: tuple[TrackConfig, ...] = ()
    trainer: TrainConfig = TrainConfig()
    wandb: WandbSettings = WandbSettings()
    model_specs: tuple[ModelSpec, ...] = ()
    zoo: ZooConfig = ZooConfig()
    shadow: ShadowConfig = ShadowConfig()
    gate: GateSettings = GateSettings()
    server: ServerConfig = ServerConfig()
    retention: RetentionConfig = RetentionConfig()
    source: Path | None = Field(None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _bucket_root(cls, data: Any) -> Any:
        """``artefacts_root: s3://…`` keeps bundles and predictions in the bucket; the local
        root becomes ``object_store.local_dir``."""
        root = data.get("artefacts_root") if isinstance(data, dict) else None
        if not (isinstance(root, str) and "://" in root):
            return data
        section = data.get("object_store") or {}
        if not isinstance(section, dict):
            return data
        local = section.get("local_dir", "var/artefacts")
        return {**data, "artefacts_root": local,
                "object_store": {**{k: v for k, v in section.items() if k != "local_dir"},
                                 "url": root, "local_dir": local}}

    @field_validator("model_specs")
    @classmethod
    def _unique_spec_names(cls, specs: tuple[ModelSpec, ...]) -> tuple[ModelSpec, ...]:
        seen: set[str] = set()
        for spec in specs:
            if spec.name in seen:
                raise ValueError(f"spec name {spec.name!r} is used twice; names must be unique")
            seen.add(spec.name)
        return specs

    @field_validator("tracks")
    @classmethod
    def _unique_track_names(cls, tracks: tuple[TrackConfig, ...]) -> tuple[TrackConfig, ...]:
        names = [track.name for track in tracks]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"track {name!r} is listed twice; track names must be unique")
        return tracks

    @model_validator(mode="after")
    def _one_market(self) -> PodiumConfig:
        misplaced = {"market": "set the market once, in the top-level 'market' section",
                     "panel": "set a panel once, in the top-level 'data' section",
                     "extra_features": "choose extra_features in a spec's overrides"}
        for key, where in misplaced.items():
            if key in self.trainer.model_fields_set:
                raise ValueError(f"{where}, not under 'trainer'")
        if any(track.name == self.track for track in self.tracks):
            raise ValueError(f"track {self.track!r} is the top-level track; list only the "
                             "further tracks under 'tracks'")
        panel = self.data if isinstance(self.data, PanelConfig) else None
        return self.model_copy(update={"trainer": self.trainer.model_copy(
            update={"market": self.market, "panel": panel})})

    @property
    def track_names(self) -> list[str]:
        """Every configured track: the top-level one first."""
        return [self.track, *(track.name for track in self.tracks)]

    def gate_for(self, track: str) -> GateSettings:
        """The gate settings of ``track`` (the top-level ones for a track not configured)."""
        return self.for_track(track).gate if track in self.track_names else self.gate

    def for_track(self, name: str) -> PodiumConfig:
        """This configuration as one track sees it: its data, specs, portfolio and gate in the
        top-level places every part reads (and no further tracks)."""
        if name == self.track:
            return self.model_copy(update={"tracks": ()})
        track = next((t for t in self.tracks if t.name == name), None)
        if track is None:
            raise ConfigError(f"track {name!r} is not configured (tracks: "
                              f"{', '.join(self.track_names)})", code="unknown_track")
        market = track.market or self.market
        panel = track.data if isinstance(track.data, PanelConfig) else None
        shadow = self.shadow.model_copy(update={"portfolio": track.portfolio
                                                or self.shadow.portfolio})
        return self.model_copy(update={
            "track": track.name, "data": track.data, "market": market, "tracks": (),
            "model_specs": self.model_specs if track.model_specs is None else track.model_specs,
            "shadow": shadow, "gate": track.gate or self.gate,
            "trainer": self.trainer.model_copy(update={"market": market, "panel": panel})})

    @property
    def datasets_root(self) -> Path:
        return self.artefacts_root / "datasets"

    @property
    def models_root(self) -> Path:
        return self.artefacts_root / "models"

    @property
    def bundle_cache_root(self) -> Path:
        """Verified local copies of bundles kept in a bucket, one directory per digest (the
        shadow runner loads from them, the server sends them)."""
        return self.artefacts_root / "cache" / "bundles"


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Apply the resolution order; raise ``ConfigError`` naming every place looked at."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"{path}: configuration file not found")
        return path
    env = os.environ.get("PODIUM_CONFIG")
    if env:
        path = Path(env)
        if not path.is_file():
            raise ConfigError(f"{path} (from $PODIUM_CONFIG): configuration file not found")
        return path
    for name in SEARCH_ORDER:
        if Path(name).is_file():
            return Path(name)
    raise ConfigError(
        "no configuration found: pass --config PATH, set $PODIUM_CONFIG, or run where "
        "podium.yaml or sample.yaml is"
    )


def load_config(path: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None
                = None) -> PodiumConfig:
    """Find, parse, validate and resolve the configuration (paths, environment overrides)."""
    env = os.environ if environ is None else environ
    source = find_config(path)
    try:
        raw_bytes = source.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read ({exc.strerror})") from None
    if len(raw_bytes) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source}: {len(raw_bytes)} bytes; a configuration is at most 1 MiB")
    try:
        text = raw_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    return parse_config(text, source=source, environ=env)


def parse_config(text: str, *, source: Path, environ: Mapping[str, str] | None = None
                 ) -> PodiumConfig:
    env = os.environ if environ is None else environ
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else str(source)
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{where}: malformed YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: malformed YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise ConfigError(f"{source}: malformed YAML: nested too deeply") from None
    except ValueError as exc:  # a value YAML cannot build: 2025-02-30, a 5000-digit integer
        raise ConfigError(f"{source}: malformed YAML: a value cannot be read ({exc})") from None
    if (duplicate := _duplicate_key(node)) is not None:
        raise ConfigError(f"{source}:{duplicate[1]}: duplicate key {duplicate[0]!r} (a YAML "
                          "mapping keeps only the last one; say it once)")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, "
                          f"not a {type(data).__name__}")
    if env.get("PODIUM_DATABASE_URL"):
        data = {**data, "database": {**(data.get("database") or {}),
                                     "url": env["PODIUM_DATABASE_URL"]}}
    if env.get("PODIUM_ARTEFACTS_ROOT"):
        data = {**data, "artefacts_root": env["PODIUM_ARTEFACTS_ROOT"]}
    try:
        config = PodiumConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, node, source)) from None
    return _resolve_paths(config, source)


def _resolve_paths(config: PodiumConfig, source: Path) -> PodiumConfig:
    for key, value in (("artefacts_root", str(config.artefacts_root)),
                       ("database.url", config.database.url)):
        if "\0" in value:
            raise ConfigError(f"{source}: {key} contains a NUL character")
    base = source.resolve().parent
    root = config.artefacts_root
    root = Path(os.path.normpath(root if root.is_absolute() else base / root))
    try:
        url = make_url(config.database.url)
    except ArgumentError:
        raise ConfigError(f"{source}: database.url {config.database.url!r} is not a "
                          "database URL (e.g. sqlite:///var/podium.db)") from None
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        db_path = Path(url.database)
        if not db_path.is_absolute():
            url = url.set(database=os.path.normpath(base / db_path))
    database = config.database.model_copy(
        update={"url": url.render_as_string(hide_password=False)})
    tracks = tuple(track.model_copy(update={"data": _resolve_data(track.data, base)})
                   for track in config.tracks)
    data = _resolve_data(config.data, base)
    panel = data if isinstance(data, PanelConfig) else None
    store = config.object_store.model_copy(update={"local_dir": root})
    return config.model_copy(update={
        "artefacts_root": root, "object_store": store, "database": database,
        "source": source.resolve(), "data": data, "tracks": tracks,
        "trainer": config.trainer.model_copy(update={"panel": panel})})


def _resolve_data(data: SyntheticData | PanelConfig, base: Path
                  ) -> SyntheticData | PanelConfig:
    """A panel's path, relative to the configuration file."""
    if not isinstance(data, PanelConfig):
        return data
    if "\0" in data.path:
        raise ConfigError(f"data.path of panel {data.name!r} contains a NUL character")
    path = Path(data.path)
    return data.model_copy(update={"path": os.path.normpath(
        path if path.is_absolute() else base / path)})


def _explain(exc: ValidationError, node: yaml.Node | None, source: Path) -> str:
    lines = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        dotted = _clip(".".join(str(part) for part in loc)) or "(top level)"
        where = f"{source}:{line}" if (line := _line_of(node, loc)) else str(source)
        if error["type"] == "extra_forbidden":
            parent = ".".join(str(p) for p in loc[:-1]) or "the top level"
            allowed = ", ".join(_allowed_keys(loc[:-1]))
            lines.append(f"{where}: unknown key {_short(str(loc[-1]))} in {_clip(parent)}; "
                         f"valid keys: {allowed}")
        else:
            got = error.get("input")
            shown = "" if isinstance(got, dict | list) else f" (got {_short(got)})"
            lines.append(f"{where}: {dotted}: {error['msg']}{shown}")
    return "\n".join(lines)


def _clip(text: str) -> str:
    return text if len(text) <= 120 else text[:117] + "…"


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except ValueError:  # an integer of more than 4300 digits
        return f"an integer of about {value.bit_length() * 0.30103:.0f} digits"
    return text if len(text) <= 80 else text[:77] + "…"


def _duplicate_key(node: yaml.Node | None) -> tuple[str, int] | None:
    """The first key said twice in one mapping, and its line (each node visited once)."""
    seen: set[int] = set()
    stack = [node] if node is not None else []
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, yaml.MappingNode):
            keys: set[tuple[str, str]] = set()
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    if (key.tag, key.value) in keys:
                        return _clip(key.value), key.start_mark.line + 1
                    keys.add((key.tag, key.value))
                stack += [key, value]
        elif isinstance(current, yaml.SequenceNode):
            stack += current.value
    return None


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: Any = PodiumConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        annotation = field.annotation
        inner = getattr(annotation, "__args__", None)
        if inner:  # tuple[ModelSpec, ...], Optional[...]
            annotation = next((a for a in inner if hasattr(a, "model_fields")), annotation)
        model = annotation
    return [name for name in getattr(model, "model_fields", {}) if name != "source"]


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest YAML node on ``loc`` (a key path from pydantic)."""
    best = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if getattr(k, "value", None) == part),
                         None)
            if match is None:
                return best
            key, node = match
            best = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(
                node.value):
            node = node.value[part]
            best = node.start_mark.line + 1
        else:
            return best
    return best
