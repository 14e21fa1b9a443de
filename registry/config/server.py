"""The service's settings: where `registry serve` listens, what it accepts from clients and
browsers, and the webhooks it delivers to (checked against private addresses on request)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from registry.config.section import Section

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


class WebhookConfig(Section):
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


class ServerConfig(Section):
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
