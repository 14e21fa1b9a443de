"""Hostile input everywhere a user hands Podium a string: the configuration file, version ids and
track names (in Python and over REST), request bodies and headers.

Each must get a clear error (``ConfigError`` / ``InvalidInput`` naming the problem, or a 4xx
problem JSON), never a crash or a traceback, and nothing outside the artefacts root is touched.
Hypothesis runs derandomised with a bounded number of examples so CI is fast and reproducible.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from registry import store
from registry.config import PodiumConfig, load_config
from registry.db import read_session, write_session
from registry.errors import ConfigError, InvalidInput, PodiumError
from registry.ids import (
    VERSION_ID_JSON_PATTERN,
    validate_slug,
    validate_version_id,
)
from registry.integrity import bundle_dir
from registry.models import ModelVersion
from tests.fuzz.conftest import API, TRACK, Deployment, snapshot

FUZZ = settings(max_examples=25, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

# Strings a hostile user would try: traversal (plain, encoded, Windows), NUL, unicode
# confusables (Cyrillic 'а', fullwidth, zero-width, right-to-left override), SQL, templates,
# shell, and lengths far past every limit.
NASTY = [
    "", ".", "..", "../", "../../etc/passwd", "..\\..\\windows\\system32", "%2e%2e%2f",
    "%2E%2E/%2E%2E/etc", "..%2F..%2Fetc%2Fpasswd", "%00", "a\x00b", "v1\x00-20250630-3fa2c1de",
    "equities\u2011daily", "еquities-daily", "ｅｑｕｉｔｉｅｓ", "equities\u200b-daily",
    "\u202eyliad-seitiuqe", "v1-20250630-3FA2C1DE", "'; DROP TABLE model_version; --",
    "\" OR 1=1 --", "x' UNION SELECT token_hash FROM api_token --", "{{7*7}}", "${HOME}",
    "$(rm -rf /)", "`id`", "<script>alert(1)</script>", "a" * 49, "v" * 10_000,
    "v1-20250230-3fa2c1de", "v1-00000101-3fa2c1de", "a..b-20250630-3fa2c1de", "/etc/passwd",
    "C:\\Windows", "~root", "\n", "\r\nX-Injected: 1", "\ud7ff", "\U0010ffff",
]
hostile = st.one_of(st.sampled_from(NASTY), st.text(max_size=64),
                    st.builds(lambda s, n: s * n, st.text(min_size=1, max_size=4),
                              st.integers(10, 3000)))


# --------------------------------------------------------------------------- version ids, tracks


@FUZZ
@given(value=hostile)
def test_ids_and_track_names_are_valid_or_refused_with_a_clear_error(value: str) -> None:
    for check, code, words in ((validate_version_id, "invalid_version_id", "invalid version id"),
                               (lambda v: validate_slug(v, what="track"), "invalid_track",
                                "invalid track")):
        try:
            assert check(value) == value
        except InvalidInput as error:
            assert error.code == code and error.status == 422
            assert error.detail.startswith(words) and len(error.detail) < 300
            assert "\x00" not in error.detail  # shown as a repr, never raw


@FUZZ
@given(value=hostile, track=hostile)
def test_no_accepted_id_names_a_path_outside_the_artefacts_root(value: str, track: str) -> None:
    root = Path("/srv/podium/artefacts")
    try:
        path = bundle_dir(root, track=track, version_id=value)
    except InvalidInput:
        return
    assert ".." not in path.parts and "\x00" not in str(path)
    assert path.parent.parent == root / "models" and path.name == value


@settings(max_examples=60, derandomize=True, deadline=None, database=None)
@given(label=st.from_regex(r"^[a-z0-9][a-z0-9._-]{0,47}$", fullmatch=True),
       day=st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31)),
       fp=st.from_regex(r"^[0-9a-f]{8}$", fullmatch=True),
       digits=st.from_regex(r"^[0-9]{8}$", fullmatch=True))
@example(label="v1", day=dt.date(2024, 2, 29), fp="00000000", digits="19000229")
def test_the_documented_id_pattern_is_exactly_what_the_server_accepts(
        label: str, day: dt.date, fp: str, digits: str) -> None:
    pattern = re.compile(VERSION_ID_JSON_PATTERN)
    for candidate in (f"{label}-{day:%Y%m%d}-{fp}", f"{label}-{digits}-{fp}"):
        try:
            validate_version_id(candidate)
            accepted = True
        except InvalidInput:
            accepted = False
        assert accepted == bool(pattern.search(candidate)), candidate


@FUZZ
@given(version_id=hostile, track=hostile)
def test_registering_hostile_ids_touches_nothing(podium: Deployment, version_id: str,
                                                 track: str) -> None:
    before = snapshot(podium.root.parent)
    with write_session(podium.engine) as session, pytest.raises(PodiumError) as caught:
        store.register_version(session, track=track, version_id=version_id,
                               fingerprint="3fa2c1de" + "0" * 56,
                               artefacts_root=podium.artefacts_root, actor="fuzz")
    assert caught.value.status < 500 and caught.value.detail
    after = snapshot(podium.root.parent)
    assert {k: v for k, v in after.items() if "podium.db" not in k} == {
        k: v for k, v in before.items() if "podium.db" not in k}


# --------------------------------------------------------------------------- REST


def _assert_problem(response: Any, *, allowed: Callable[[int], bool] = lambda s: 400 <= s < 500
                    ) -> dict[str, Any]:
    assert allowed(response.status_code), (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert {"type", "title", "status", "detail", "code", "request_id"} <= set(body)
    assert body["status"] == response.status_code and len(body["detail"]) < 600
    assert "Traceback" not in response.text and "sqlalchemy" not in response.text.lower()
    return body


def _states(podium: Deployment) -> dict[str, str]:
    with read_session(podium.engine) as session:
        return {v.version_id: v.state for v in session.exec(select(ModelVersion))}


@pytest.fixture
def api(podium: Deployment) -> TestClient:
    client = TestClient(podium.app, raise_server_exceptions=False)
    with client:
        yield client


@FUZZ
@given(value=hostile, encode=st.booleans())
@example(value="../../../etc/passwd", encode=False)
@example(value="v3.1-resmom-20250630-3fa2c1de/../../../../etc", encode=False)
def test_hostile_path_parameters_get_a_4xx_problem(api: TestClient, podium: Deployment,
                                                   value: str, encode: bool) -> None:
    segment = quote(value, safe="" if encode else "/.")
    states, outside = _states(podium), snapshot(podium.outside)
    for method, url, body in (
            ("GET", f"{API}/versions/{segment}", None),
            ("GET", f"{API}/tracks/{segment}/champion", None),
            ("GET", f"{API}/tracks/{segment}/audit", None),
            ("GET", f"{API}/events/{segment}/deliveries", None),
            ("POST", f"{API}/versions/{segment}/promote", {"reason": "fuzz", "force": True}),
            ("POST", f"{API}/versions/{segment}/retire", {"reason": "fuzz"}),
            ("POST", f"{API}/tracks/{segment}/rollback", {"reason": "fuzz"})):
        response = api.request(method, url, json=body, headers=podium.auth("admin"))
        if response.status_code == 200:  # the hostile string was a real, valid id after all
            continue
        _assert_problem(response)
    assert _states(podium) == states and snapshot(podium.outside) == outside


@pytest.mark.parametrize("reason", ["a\x00b", "\x00", " \x00 "])
def test_a_reason_with_nul_is_refused_on_every_database(api: TestClient, podium: Deployment,
                                                        reason: str) -> None:
    # PostgreSQL's text refuses NUL: before the check this was a 500 there (SQLite stores it).
    states = _states(podium)
    for url in (f"{API}/versions/{podium.versions['challenger']}/promote",
                f"{API}/versions/{podium.versions['challenger']}/retire",
                f"{API}/tracks/{TRACK}/rollback"):
        response = api.post(url, headers=podium.auth("admin"),
                            json={"reason": reason, "force": True} if "promote" in url
                            else {"reason": reason})
        body = _assert_problem(response, allowed=lambda s: s == 422)
        assert body["code"] == "validation_error" and "NUL" in body["detail"]
    assert _states(podium) == states


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hostile,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile, inner, max_size=4),
    max_leaves=12)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"reason": hostile}, optional={
        "force": json_values, "expected_champion": json_values, "extra": json_values}))


@FUZZ
@given(body=bodies, scope=st.sampled_from(["read", "promote"]))
def test_hostile_bodies_never_promote_without_the_scope_and_never_500(
        api: TestClient, podium: Deployment, body: Any, scope: str) -> None:
    states = _states(podium)
    for url in (f"{API}/versions/{podium.versions['challenger']}/promote",
                f"{API}/versions/{podium.versions['challenger']}/retire",
                f"{API}/tracks/{TRACK}/rollback"):
        response = api.post(url, json=body, headers=podium.auth(scope))
        if response.status_code == 200:  # a valid retire or rollback by a promoter
            assert scope == "promote" and not url.endswith("/promote")
            continue
        _assert_problem(response)
    if scope == "read":
        assert _states(podium) == states


@FUZZ
@given(raw=st.binary(max_size=300))
def test_bodies_that_are_not_json_get_a_4xx_problem(api: TestClient, podium: Deployment,
                                                    raw: bytes) -> None:
    url = f"{API}/versions/{podium.versions['challenger']}/promote"
    for content_type in ("application/json", "text/plain", "application/x-www-form-urlencoded"):
        response = api.post(url, content=raw, headers={**podium.auth("admin"),
                                                       "Content-Type": content_type})
        _assert_problem(response)


header_values = st.one_of(
    st.sampled_from(["", " ", "Bearer", "Bearer ", "Bearer  ", "bearer pod_x", "Basic YTpi",
                     "Bearer pod_" + "A" * 100_000, "Bearer " + "é" * 50, "Bearer pod_\t",
                     "Digest username=admin", "Bearer pod_' OR '1'='1", "Bearer ../../"]),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xff,
                                   blacklist_characters="\x7f"), max_size=80))


@FUZZ
@given(authorization=header_values, key=header_values)
def test_bad_authorization_and_idempotency_headers(api: TestClient, podium: Deployment,
                                                   authorization: str, key: str) -> None:
    assume(authorization.strip() not in {f"Bearer {t}" for t in podium.tokens.values()})
    headers = {"Authorization": authorization.encode("latin-1"),
               "Idempotency-Key": key.encode("latin-1")}
    for method, url in (("GET", f"{API}/tracks"),
                        ("GET", f"{API}/versions/{podium.versions['champion']}"),
                        ("POST", f"{API}/versions/{podium.versions['challenger']}/promote")):
        response = api.request(method, url, headers=headers,
                               json={"reason": "fuzz", "force": True} if method == "POST" else None)
        body = _assert_problem(response, allowed=lambda s: s == 401)
        assert body["code"] in {"missing_token", "invalid_token"}
        assert response.headers["www-authenticate"].startswith("Bearer")


@FUZZ
@given(key=header_values)
@example(key="k" * 10_000)
@example(key="../../etc/passwd")
def test_a_valid_caller_with_a_bad_idempotency_key_is_refused_before_acting(
        api: TestClient, podium: Deployment, key: str) -> None:
    assume(not re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", key))
    states = _states(podium)
    response = api.post(f"{API}/versions/{podium.versions['challenger']}/promote",
                        headers={**podium.auth("admin"), "Idempotency-Key": key.encode("latin-1")},
                        json={"reason": "fuzz", "force": True})
    body = _assert_problem(response, allowed=lambda s: s == 422)
    assert body["code"] == "invalid_idempotency_key"
    assert _states(podium) == states


@FUZZ
@given(track=hostile, state=hostile, limit=hostile, offset=hostile)
@example(track="a", state="champion", limit="1", offset=str(2**63))
@example(track="a", state="champion", limit="1", offset="9" * 5000)
def test_hostile_query_strings(api: TestClient, podium: Deployment, track: str, state: str,
                               limit: str, offset: str) -> None:
    query = {"track": track, "state": state, "limit": limit, "offset": offset, "after": offset}
    for url in (f"{API}/versions", f"{API}/events", f"{API}/tracks/{TRACK}/audit"):
        response = api.get(url, params=query, headers=podium.auth("read"))
        if response.status_code != 200:
            _assert_problem(response)


# --------------------------------------------------------------------------- configuration

TOP_KEYS = [name for name in PodiumConfig.model_fields if name != "source"]
yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), hostile,
                         st.integers(-(10**300), 10**300))
yaml_trees = st.recursive(
    yaml_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.one_of(st.sampled_from(TOP_KEYS + ["url", "port", "host", "cors_origins", "name"]),
                  hostile), inner, max_size=3),
    max_leaves=15)
documents = st.dictionaries(st.one_of(st.sampled_from(TOP_KEYS), hostile), yaml_trees,
                            max_size=4)
yaml_syntax = st.lists(st.sampled_from(list(":-[]{}&*!|>'\"%@`#,? \n\t\\") +
                                        ["a", "0", "é", "\x00", "\ufeff", "<<", "&a", "*a",
                                         "!!", "track", "server", "port", "\n  "]),
                       max_size=120).map("".join)


def _load(text: str | bytes) -> tuple[PodiumConfig | None, str | None, dict[str, Any]]:
    """Load ``text`` from a fresh directory; return (config, error, files changed)."""
    with tempfile.TemporaryDirectory() as where:
        root = Path(where)
        (root / "sentinel").mkdir()
        (root / "sentinel" / "keep.txt").write_text("unchanged\n")
        path = root / "conf" / "podium.yaml"
        path.parent.mkdir()
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8",
                                                                        "surrogatepass"))
        before = snapshot(root)
        try:
            config, error = load_config(path, environ={}), None
        except ConfigError as exc:
            config, error = None, str(exc)
            assert error.startswith(str(path)), error
            assert all(line.startswith(str(path)) and len(line) < len(str(path)) + 700
                       for line in error.splitlines()), error
        changed = {k: v for k, v in snapshot(root).items() if before.get(k) != v}
        return config, error, changed


@FUZZ
@given(document=documents)
def test_any_yaml_document_loads_or_gets_a_config_error(document: dict[str, Any]) -> None:
    config, error, changed = _load(yaml.safe_dump(document, allow_unicode=True))
    assert (config is None) != (error is None) and not changed


@FUZZ
@given(text=yaml_syntax)
def test_any_text_loads_or_gets_a_config_error(text: str) -> None:
    config, error, changed = _load(text)
    assert (config is None) != (error is None) and not changed


@pytest.mark.parametrize(("text", "words"), [
    ("a: " + "[" * 5000 + "]" * 5000, "nested too deeply"),
    ("a: " + "{a: " * 3000 + "1" + "}" * 3000, "nested too deeply"),
    ("server: {port: " + "9" * 5000 + "}\n", "cannot be read"),
    ("server: {port: 0x" + "f" * 5000 + "}\n", "integer of about"),
    ("server: {max_body_bytes: .inf}\n", "finite number"),
    ("gate: {alpha: .nan}\n", "gate.alpha"),
    ("server: {port: 1e400}\n", "server.port"),
    ("track: 2025-02-30\n", "day is out of range"),
    ('artefacts_root: "a\\0b"\n', "artefacts_root contains a NUL character"),
    ('database: {url: "sqlite:///x\\0y.db"}\n', "database.url contains a NUL character"),
    ("artefacts_root: a\0b\n", "unacceptable character"),
    ("trаck: x\n", "unknown key 'trаck' in the top level"),  # Cyrillic 'а'
    ("track: еquities\n", "track: String should match pattern"),
    ("track: ../../etc\n", "track: String should match pattern"),
    ("track: \"'; DROP TABLE model_version; --\"\n", "track: String should match pattern"),
    ("track: " + "a" * 900_000 + "\n", "…"),
    ("k" * 200_000 + ": 1\n", "malformed YAML"),
    ("a: !!python/object/apply:os.system ['touch pwned']\n", "could not determine"),
    ("track: a\ntrack: b\n", ":2: duplicate key 'track'"),
    ("server:\n  port: 1\n  port: 2\n", ":3: duplicate key 'port'"),
    ("- a\n", "must be a mapping"),
    ("1: 2\n", "Keys should be strings"),
    ("database: {url: '${DATABASE_URL}'}\n", "is not a database URL"),
    ("x" * (1 << 20) + "\n", "at most 1 MiB"),
    ("a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
     "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
     "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
     "server: {cors_origins: *f}\n", "unknown key 'a'"),
], ids=lambda v: v[:24] if isinstance(v, str) else v)
def test_hostile_configuration_files_get_a_clear_error(text: str, words: str) -> None:
    config, error, changed = _load(text)
    assert config is None and error is not None and words in error, error
    assert not changed and "Traceback" not in error


@pytest.mark.parametrize("text", [b"track: a\n".decode().encode("utf-16"), bytes(range(256))])
def test_configuration_that_is_not_utf8(text: bytes) -> None:
    config, error, changed = _load(text)
    assert config is None and error is not None and "not UTF-8 text" in error and not changed


def test_relative_paths_resolve_lexically_and_loading_creates_nothing() -> None:
    config, error, changed = _load("artefacts_root: ../../../../../../../../etc/podium\n"
                                   "database: {url: 'sqlite:///../../../../../../tmp/x.db'}\n")
    assert error is None and config is not None and not changed
    assert config.artefacts_root == Path("/etc/podium")  # the operator's choice, kept exact
    assert config.database.url == "sqlite:////tmp/x.db"


@pytest.mark.parametrize("where", ["a\x00b.yaml", "../" * 40 + "etc/passwd", "/dev/null/x"])
def test_a_missing_or_impossible_config_path_is_a_config_error(where: str) -> None:
    with pytest.raises(ConfigError, match="configuration file not found|must be a mapping"):
        load_config(where, environ={})


def test_error_messages_bound_what_they_echo() -> None:
    _, error, _ = _load(json.dumps({"server": {"cors_origins": ["x" * 10_000] * 3,
                                               "y" * 10_000: 1}}))
    assert error is not None and len(error) < 2_000, len(error or "")
