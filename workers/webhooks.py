"""Delivering webhooks: sign the body, POST it, log the attempt, decide on a retry.

Each attempt POSTs the delivery's stored body with

- ``X-Chorus-Signature: t=<unix seconds>,v1=<hex>``: HMAC-SHA256 of ``<t>.<body>`` under
  the webhook's secret (stdlib ``hmac``/``hashlib``; no library needed either side),
- ``X-Chorus-Event``: the event name, ``X-Chorus-Delivery``: the delivery id (the same
  on every retry, so a receiver can drop duplicates).

A 2xx answer delivers it. A connection error, a timeout, a 5xx or a 429 is retried with
exponential backoff and jitter (a 429's Retry-After is honoured up to the backoff cap),
up to WEBHOOK_MAX_ATTEMPTS; any other answer (3xx, 4xx) is final. Every attempt is
recorded in the delivery's ``attempt_log``, conditionally on the attempts before it, so
two executions of one job never log the same attempt twice.

Unless WEBHOOK_ALLOW_PRIVATE (the default outside production), a URL whose address —
written in it, or as its name resolves — is not public (loopback, private, link-local...)
fails at once: users cannot make the workers probe internal hosts.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import random
import socket
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from server.config import Settings
from server.store.base import Store
from server.store.models import WebhookAttempt, WebhookDelivery, utcnow
from workers.retry import retry_after

log = logging.getLogger("chorus.webhooks")
USER_AGENT = "Chorus-Webhooks/1"
_MAX_ERROR = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Return the ``X-Chorus-Signature`` value for a body sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


class BlockedAddress(OSError):
    """The webhook's host is not a public address (and private ones are not allowed)."""


def _public(host: str) -> bool:
    """Whether an IP address is a public unicast one; False for anything not an address."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _literal_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


class PublicOnlyResolver(AbstractResolver):
    """Resolve names as usual but keep only public addresses (so the check holds for the
    very address connected to: a name cannot resolve differently between check and use)."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve ``host``; raise BlockedAddress if none of its addresses is public."""
        found = await self._inner.resolve(host, port, family)
        public = [info for info in found if _public(info["host"])]
        if not public:
            raise BlockedAddress(f"{host} has no public address")
        return public

    async def close(self) -> None:
        """Close the wrapped resolver."""
        await self._inner.close()


@dataclass(frozen=True)
class Answer:
    """How one POST went: a status code, or the error that kept it from getting one."""

    status_code: int | None = None
    error: str | None = None
    retry_after_s: float | None = None
    blocked: bool = False  # the address is not allowed: final

    @property
    def ok(self) -> bool:
        """A 2xx answer."""
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        """No answer at all, a 5xx or a 429."""
        code = self.status_code
        if code is None:
            return not self.blocked
        return code >= 500 or code == 429


class WebhookSender:
    """Attempt deliveries over one aiohttp client session (closed by ``close``)."""

    def __init__(self, store: Store, settings: Settings, rng: random.Random | None = None) -> None:
        self._store = store
        self._timeout = aiohttp.ClientTimeout(total=settings.webhook_timeout_s)
        self._max_attempts = settings.webhook_max_attempts
        self._base_s = settings.webhook_backoff_base_s
        self._max_s = settings.webhook_backoff_max_s
        self._rng = rng or random.Random()
        self._private_ok = settings.webhook_private_ok
        self._http: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            options: dict[str, Any] = {}
            if not self._private_ok:
                options["connector"] = aiohttp.TCPConnector(resolver=PublicOnlyResolver())
            self._http = aiohttp.ClientSession(
                timeout=self._timeout, headers={"User-Agent": USER_AGENT}, **options
            )
        return self._http

    async def close(self) -> None:
        """Close the client session (idempotent)."""
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt ``attempt`` (1-based): exponential, half jittered."""
        ceiling = min(self._max_s, self._base_s * 2.0 ** (attempt - 1))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    async def attempt(self, delivery_id: str) -> float | None:
        """Make the delivery's next attempt and log it; return the wait before a retry.

        None: delivered, failed for good, or nothing to do (already finished, or another
        execution logged this attempt first).
        """
        delivery = await self._store.get_webhook_delivery(delivery_id)
        if delivery is None or delivery.status != "pending":
            return None
        webhook = await self._store.get_webhook(delivery.user_id)
        started = time.monotonic()
        if webhook is None:
            answer = Answer(error="the webhook was removed")
            final = True
        else:
            answer = await self._post(webhook.url, webhook.secret, delivery)
            final = not answer.retryable
        number = delivery.attempts + 1
        retry = not answer.ok and not final and number < self._max_attempts
        delay = max(self.backoff(number), min(answer.retry_after_s or 0.0, self._max_s))
        took_s = time.monotonic() - started
        await self._log(delivery, answer, took_s=took_s, delay=delay if retry else None)
        return delay if retry else None

    async def _post(self, url: str, secret: str, delivery: WebhookDelivery) -> Answer:
        host = URL(url).host or ""
        if not self._private_ok and _literal_ip(host) and not _public(host):
            return Answer(error=f"{host} is not a public address", blocked=True)
        body = delivery.body.encode()
        headers = {
            "Content-Type": "application/json",
            "X-Chorus-Event": delivery.event,
            "X-Chorus-Delivery": delivery.delivery_id,
            "X-Chorus-Signature": signature(secret, int(time.time()), body),
        }
        try:
            async with self._session().post(
                url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                waited = retry_after(resp.headers) if resp.status == 429 else None
                error = None if 200 <= resp.status < 300 else f"HTTP {resp.status}"
                return Answer(resp.status, error, waited)
        except TimeoutError:
            return Answer(error=f"timed out after {self._timeout.total} s")
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, BlockedAddress):
                return Answer(error=str(exc.os_error), blocked=True)
            return Answer(error=_short(f"{type(exc).__name__}: {exc}"))
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return Answer(error=_short(f"{type(exc).__name__}: {exc}"))

    async def _log(
        self, delivery: WebhookDelivery, answer: Answer, *, took_s: float, delay: float | None
    ) -> None:
        """Record the attempt; ``delay``: the wait before the next one (None: no retry)."""
        now, number, retry = utcnow(), delivery.attempts + 1, delay is not None
        entry = WebhookAttempt(
            attempt=number, at=now, status_code=answer.status_code, error=answer.error,
            duration_ms=round(took_s * 1000, 1),
        )  # fmt: skip
        status = "delivered" if answer.ok else "pending" if retry else "failed"
        fields = {
            "attempts": number, "status": status, "status_code": answer.status_code,
            "error": answer.error, "attempt_log": [*delivery.attempt_log, entry],
            "updated_at": now, "finished_at": None if status == "pending" else now,
            "next_attempt_at": None if delay is None else now + timedelta(seconds=delay),
        }  # fmt: skip
        logged = await self._store.update_webhook_delivery(
            delivery.delivery_id,
            fields,
            expect={"attempts": delivery.attempts, "status": "pending"},
        )
        if logged is not None and status != "delivered":
            log.warning(
                "webhook delivery %s attempt %d: %s%s", delivery.delivery_id, number,
                answer.error, "; giving up" if delay is None else f"; retrying in {delay:.1f} s",
            )  # fmt: skip


def _short(text: str) -> str:
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 1] + "…"
