"""Webhooks: every outbox event, POSTed as JSON signed with HMAC-SHA256, retried with backoff.

The dispatcher is a background thread, never part of a request: a transition commits its event
row (the outbox) and returns; the dispatcher fans new events out into one ``webhook_delivery``
row per configured URL, then sends what is due. A send has a short timeout and runs on a small
worker pool, so a dead or hanging endpoint delays only its own deliveries and never blocks or
undoes a promotion. Each body is signed with the secret from the environment variable named in
the configuration, two ways: the Standard Webhooks scheme (``webhook-id``: the event's id, the
same on every retry; ``webhook-timestamp``: Unix seconds of this attempt; ``webhook-signature``:
``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``; a ``whsec_`` secret is base64, any other is
used as its bytes), so a receiver can refuse replays older than its tolerance; and, for
existing receivers, ``X-Podium-Signature: sha256=<hex>`` over the raw body. With
``server.webhooks_allow_private: false`` a URL whose host resolves to a private, loopback or
link-local address is refused at each send (a permanent failure). A failed send is retried
after ``backoff_s · 2^(attempts−1)`` seconds (capped), up to ``max_attempts``, then marked
``failed``. Delivery is at least once: receivers dedupe on
``X-Podium-Event-Id``. Several replicas may run dispatchers: a delivery is claimed with a
compare-and-set on its ``next_attempt_at`` before it is sent.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import socket
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Engine, func, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from standardwebhooks import Webhook

from registry.config import WebhookConfig, literal_ip
from registry.db import read_session, write_session
from registry.models import Event, WebhookDelivery, utcnow

log = logging.getLogger("registry.webhooks")
SIGNATURE_HEADER = "X-Podium-Signature"


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """What a receiver does: constant-time comparison of the header with its own signature."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


def standard_webhook(secret: str) -> Webhook:
    """The Standard Webhooks signer for ``secret`` (``whsec_<base64>``, or raw bytes)."""
    return Webhook(secret if secret.startswith("whsec_") else secret.encode("utf-8"))


def standard_headers(secret: str, *, message_id: str, body: bytes,
                     at: dt.datetime) -> dict[str, str]:
    """``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` for one attempt."""
    signature = standard_webhook(secret).sign(message_id, at, body.decode("utf-8"))
    return {"webhook-id": message_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signature}


def private_address_of(url: str) -> str | None:
    """The first private, loopback or link-local address ``url``'s host is or resolves to."""
    host = urlsplit(url).hostname or ""
    address = literal_ip(host)
    if address is not None:
        return None if address.is_global else str(address)
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return None  # unresolvable: the send itself fails and is retried
    for info in infos:
        address = literal_ip(str(info[4][0]).split("%")[0])
        if address is not None and not address.is_global:
            return str(address)
    return None


def hook_status(engine: Engine, hooks: Sequence[WebhookConfig]) -> list[dict[str, Any]]:
    """Per configured hook: deliveries by state, the last attempt's status and error."""
    out = []
    with read_session(engine) as session:
        for hook in hooks:
            counts = dict(session.exec(
                select(WebhookDelivery.state, func.count())
                .where(WebhookDelivery.url == hook.url)
                .group_by(col(WebhookDelivery.state))).all())
            last = session.exec(
                select(WebhookDelivery).where(WebhookDelivery.url == hook.url,
                                              col(WebhookDelivery.attempts) > 0)
                .order_by(col(WebhookDelivery.id).desc()).limit(1)).first()
            out.append({"url": hook.url, "secret_env": hook.secret_env,
                        **{state: counts.get(state, 0)
                           for state in ("pending", "delivered", "failed")},
                        "last_status": last.last_status if last else None,
                        "last_error": last.last_error if last else None,
                        "last_delivered_at": session.exec(
                            select(func.max(WebhookDelivery.delivered_at))
                            .where(WebhookDelivery.url == hook.url)).one()})
    return out


class WebhookDispatcher:
    """Fans events out to the configured webhooks and delivers them; ``start``/``stop``."""

    def __init__(self, engine: Engine, hooks: Sequence[WebhookConfig], *,
                 environ: Mapping[str, str] | None = None, timeout_s: float = 3.0,
                 backoff_s: float = 2.0, max_backoff_s: float = 300.0, max_attempts: int = 8,
                 poll_s: float = 1.0, workers: int = 4, batch: int = 50,
                 allow_private: bool = True) -> None:
        self.engine, self.hooks, self.allow_private = engine, tuple(hooks), allow_private
        self.environ = os.environ if environ is None else environ
        self.timeout_s, self.backoff_s, self.max_backoff_s = timeout_s, backoff_s, max_backoff_s
        self.max_attempts, self.poll_s, self.batch = max_attempts, poll_s, batch
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="webhook")
        self._http = httpx.Client(timeout=httpx.Timeout(timeout_s),
                                  headers={"User-Agent": "podium-webhooks/1"})
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_after = 0
        self._in_flight: set[int] = set()
        self._lock = threading.Lock()

    # -- lifecycle

    def start(self) -> None:
        with read_session(self.engine) as session:
            self._start_after = session.exec(select(func.max(Event.id))).one() or 0
        self._thread = threading.Thread(target=self._loop, name="webhook-dispatcher",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s + 2)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()

    def notify(self) -> None:
        """A transition committed: look for new events now rather than at the next poll."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # an outage must not kill the dispatcher; it retries next poll
                log.exception("webhook dispatch failed; retrying in %.1fs", self.poll_s)
            self._wake.wait(self.poll_s)
            self._wake.clear()

    # -- one pass

    def run_once(self) -> int:
        """Fan out new events, then start every due delivery; returns how many were started."""
        for hook in self.hooks:
            self._fan_out(hook.url)
        started = 0
        for delivery_id in self._claim_due():
            with self._lock:
                self._in_flight.add(delivery_id)
            self._pool.submit(self._deliver, delivery_id)
            started += 1
        return started

    def _fan_out(self, url: str) -> None:
        with write_session(self.engine) as session:
            cursor = session.exec(select(func.max(WebhookDelivery.event_id))
                                  .where(WebhookDelivery.url == url)).one()
            after = self._start_after if cursor is None else cursor
            ids = list(session.exec(select(Event.id).where(col(Event.id) > after)
                                    .order_by(col(Event.id)).limit(self.batch)))
            if not ids:
                session.rollback()
                return
            insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
            now = utcnow()
            session.exec(insert(WebhookDelivery).values([
                {"event_id": event_id, "url": url, "state": "pending", "attempts": 0,
                 "next_attempt_at": now, "created_at": now} for event_id in ids
            ]).on_conflict_do_nothing(index_elements=["event_id", "url"]))
            session.commit()

    def _claim_due(self) -> list[int]:
        now = utcnow()
        lease = now + dt.timedelta(seconds=self.timeout_s * 2 + 5)
        claimed = []
        with write_session(self.engine) as session:
            due = session.exec(
                select(WebhookDelivery.id, WebhookDelivery.next_attempt_at)
                .where(WebhookDelivery.state == "pending",
                       col(WebhookDelivery.next_attempt_at) <= now)
                .order_by(col(WebhookDelivery.next_attempt_at)).limit(self.batch)).all()
            for delivery_id, when in due:
                if delivery_id in self._in_flight:
                    continue
                result = session.exec(
                    update(WebhookDelivery)
                    .where(col(WebhookDelivery.id) == delivery_id,
                           col(WebhookDelivery.next_attempt_at) == when,
                           col(WebhookDelivery.state) == "pending")
                    .values(next_attempt_at=lease))
                if result.rowcount == 1:
                    claimed.append(delivery_id)
            session.commit()
        return claimed

    def _deliver(self, delivery_id: int) -> None:
        try:
            self._attempt(delivery_id)
        except Exception:
            log.exception("webhook delivery %d: could not record the attempt", delivery_id)
        finally:
            with self._lock:
                self._in_flight.discard(delivery_id)

    def _attempt(self, delivery_id: int) -> None:
        with read_session(self.engine) as session:
            delivery = session.get(WebhookDelivery, delivery_id)
            event = session.get(Event, delivery.event_id) if delivery else None
        if delivery is None or event is None:
            return
        hook = next((h for h in self.hooks if h.url == delivery.url), None)
        secret = self.environ.get(hook.secret_env) if hook else None
        status: int | None = None
        private = None if self.allow_private or hook is None else private_address_of(hook.url)
        if hook is None:
            error = "this URL is no longer configured"
        elif not secret:
            error = f"the signing secret ${hook.secret_env} is not set on the server"
        elif private is not None:
            error = (f"refused: the host resolves to the private address {private} "
                     "(server.webhooks_allow_private is false)")
        else:
            body = json.dumps({"id": event.id, **event.payload}, sort_keys=True,
                              separators=(",", ":")).encode("utf-8")
            status, error = self._post(delivery.url, body, secret=secret, event=event,
                                       delivery_id=delivery_id)
        self._record(delivery_id, attempts=delivery.attempts + 1, status=status, error=error,
                     permanent=hook is None or not secret or private is not None)

    def _post(self, url: str, body: bytes, *, secret: str, event: Event,
              delivery_id: int) -> tuple[int | None, str | None]:
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body),
                   "X-Podium-Event": event.kind, "X-Podium-Event-Id": str(event.id),
                   "X-Podium-Delivery": str(delivery_id),
                   **standard_headers(secret, message_id=f"evt_{event.id}", body=body,
                                      at=utcnow())}
        try:
            response = self._http.post(url, content=body, headers=headers)
        except httpx.TimeoutException:
            return None, f"timed out after {self.timeout_s:g}s"
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500]
        if 200 <= response.status_code < 300:
            return response.status_code, None
        return response.status_code, f"HTTP {response.status_code}"

    def _record(self, delivery_id: int, *, attempts: int, status: int | None,
                error: str | None, permanent: bool) -> None:
        now = utcnow()
        if error is None:
            values = {"state": "delivered", "delivered_at": now, "last_error": None}
        elif permanent or attempts >= self.max_attempts:
            values = {"state": "failed", "last_error": error}
            log.warning("webhook delivery %d failed for good after %d attempt(s): %s",
                        delivery_id, attempts, error)
        else:
            delay = min(self.backoff_s * 2 ** (attempts - 1), self.max_backoff_s)
            values = {"state": "pending", "last_error": error,
                      "next_attempt_at": now + dt.timedelta(seconds=delay)}
        with write_session(self.engine) as session:
            session.exec(update(WebhookDelivery).where(col(WebhookDelivery.id) == delivery_id)
                         .values(attempts=attempts, last_status=status, **values))
            session.commit()
        if error is not None and not permanent:
            self._wake.set()  # a retry may be due before the next poll
