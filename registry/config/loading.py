"""Finding, reading and checking the configuration file, and errors that say where it is wrong.

Resolution: ``--config PATH``, else ``$PODIUM_CONFIG``, else ``./podium.yaml``, else
``./sample.yaml``. Relative paths inside a file are relative to that file.
``PODIUM_DATABASE_URL`` and ``PODIUM_ARTEFACTS_ROOT`` override the file. Every error names the
file and, where it can, the line, the key and what was expected.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from registry.config.schema import PodiumConfig
from registry.config.tracks import SyntheticData
from registry.errors import ConfigError
from trainer.config import URL_SCHEMES, PanelConfig

SEARCH_ORDER = ("podium.yaml", "sample.yaml")
MAX_CONFIG_BYTES = 1 << 20


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
    """A panel's path, relative to the configuration file (a bucket's URL stays as written)."""
    if not isinstance(data, PanelConfig) or data.path.startswith(URL_SCHEMES):
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
