"""Webhooks: URLs checked at load, private hosts refusable, Standard Webhooks signatures,
per-hook status for admins only."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from pathlib import Path

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from registry.config import load_config
from registry.errors import ConfigError
from tests.api import test_webhooks
from tests.api.conftest import API, assert_problem
from tests.api.test_webhooks import SECRET, _hooked_client, _promote, _settled, _wait_for

receivers = test_webhooks.receivers  # the loopback HTTP receivers' fixture


def _load(tmp_path: Path, server_yaml: str):
    (tmp_path / "podium.yaml").write_text(f"server:\n{server_yaml}")
    return load_config(tmp_path / "podium.yaml", environ={})


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://hooks.example/x",
                                 "not a url", "https://", "http://hooks.example:99999/x",
                                 "ftp://hooks.example/"])
def test_a_webhook_url_that_is_not_http_is_a_config_error_naming_the_key(
        tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError, match=r"podium\.yaml:3: server\.webhooks\.0\.url: ") as err:
        _load(tmp_path, f"  webhooks:\n    - url: {json.dumps(url)}\n      secret_env: S\n")
    assert err.value.code == "invalid_config" and err.value.exit_code == 2
    assert "http:// or https://" in err.value.detail or "not a URL" in err.value.detail


@pytest.mark.parametrize("host", ["10.1.2.3", "127.0.0.1", "169.254.169.254", "[fe80::1]",
                                  "192.168.0.10", "[::1]"])
def test_private_literal_addresses_are_refused_at_load_when_asked(tmp_path: Path,
                                                                  host: str) -> None:
    hook = f"  webhooks:\n    - url: http://{host}/hook\n      secret_env: S\n"
    assert _load(tmp_path, hook).server.webhooks[0].url == f"http://{host}/hook"  # allowed
    with pytest.raises(ConfigError, match="private, loopback or link-local") as err:
        _load(tmp_path, hook + "  webhooks_allow_private: false\n")
    assert err.value.code == "invalid_config" and "webhooks.0.url" in err.value.detail
    public = "  webhooks:\n    - url: https://93.184.216.34/hook\n      secret_env: S\n"
    assert _load(tmp_path, public + "  webhooks_allow_private: false\n").server.webhooks


def _standard_signature(secret: str, message_id: str, timestamp: str, body: bytes) -> str:
    """The Standard Webhooks signature, computed by hand from the specification."""
    digest = hmac.new(secret.encode(), f"{message_id}.{timestamp}.".encode() + body,
                      hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def test_deliveries_carry_standard_webhooks_headers(make_client, monkeypatch, receivers, auth,
                                                    register) -> None:
    receiver = receivers([500, 200])
    version_id = register("v1-linear")
    client = _hooked_client(make_client, monkeypatch, receiver.url)
    before = int(dt.datetime.now(dt.UTC).timestamp())
    _promote(client, auth, version_id)
    _wait_for(lambda: _settled(client, auth))
    (first, body), (retry, body_again) = receiver.requests
    event_id = json.loads(body)["id"]
    for headers in (first, retry):
        assert headers["webhook-id"] == f"evt_{event_id}"  # the same on a retry: dedupe on it
        assert before - 1 <= int(headers["webhook-timestamp"]) <= before + 60
        assert headers["webhook-signature"] == _standard_signature(
            SECRET, headers["webhook-id"], headers["webhook-timestamp"], body)
    assert body_again == body
    assert Webhook(SECRET.encode()).verify(body, retry) == json.loads(body)
    with pytest.raises(WebhookVerificationError):
        Webhook(b"another secret").verify(body, retry)
    replayed = {**retry, "webhook-timestamp": str(before - 3600)}
    with pytest.raises(WebhookVerificationError):  # a replay an hour later is refused
        Webhook(SECRET.encode()).verify(body, replayed)


def test_a_host_resolving_to_a_private_address_is_refused_when_asked(
        make_client, monkeypatch, receivers, auth, register) -> None:
    receiver = receivers([200])
    version_id = register("v1-linear")
    url = receiver.url.replace("127.0.0.1", "localhost")  # a name, checked when sending
    monkeypatch.setenv("PODIUM_TEST_HOOK_SECRET", SECRET)
    client = make_client(webhooks=[{"url": url, "secret_env": "PODIUM_TEST_HOOK_SECRET"}],
                         webhooks_allow_private=False, webhook_options=test_webhooks.FAST)
    _promote(client, auth, version_id)
    rows = _wait_for(lambda: _settled(client, auth))
    assert [(r["state"], r["attempts"]) for r in rows] == [("failed", 1)]
    assert rows[0]["last_error"].startswith("refused: the host resolves to the private address")
    assert receiver.requests == []


def test_per_hook_status_is_for_admins_only(make_client, monkeypatch, receivers, auth,
                                            register) -> None:
    good, bad = receivers([200]), receivers([503])
    version_id = register("v1-linear")
    client = _hooked_client(make_client, monkeypatch, good.url, bad.url, max_attempts=1)
    _promote(client, auth, version_id)
    _wait_for(lambda: _settled(client, auth))
    for scope in ("read", "promote"):
        assert_problem(client.get(f"{API}/webhooks", headers=auth(scope)), 403,
                       "insufficient_scope")
        assert_problem(client.get(f"{API}/events/1/deliveries", headers=auth(scope)), 403,
                       "insufficient_scope")
    listed = client.get(f"{API}/events", headers=auth("read")).json()["items"]
    assert listed and all(e["deliveries"] == [] for e in listed)
    status = {h["url"]: h for h in client.get(f"{API}/webhooks", headers=auth("admin")).json()}
    assert status[good.url]["delivered"] == 1 and status[good.url]["failed"] == 0
    assert status[good.url]["last_delivered_at"] is not None
    assert (status[bad.url]["failed"], status[bad.url]["last_status"],
            status[bad.url]["last_error"]) == (1, 503, "HTTP 503")
