"""Webhooks: a user's endpoint told when a run completes, fails or waits for approval.

A notification is sent only when no socket or stream of the user is watching the run's
session (``server/events/presence.py``): whoever watches sees it happen. Sending is an
arq job (``deliver_webhook``, run by the workers), so a delivery survives the restart of
the process that scheduled it; each delivery is a document in ``webhook_deliveries``
(the delivery log) whose ``body`` is the exact JSON POSTed on every attempt. Signing and
sending are in ``workers/webhooks.py``; the format is documented in docs/webhooks.md.
"""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any

from arq.connections import ArqRedis

from server.errors import NotFound
from server.events.presence import watching
from server.redis_keys import RedisKeys
from server.store.base import Store
from server.store.models import Run, User, Webhook, WebhookDelivery, WebhookEvent, utcnow

log = logging.getLogger("chorus.webhooks")
WEBHOOK_JOB = "deliver_webhook"
SECRET_PREFIX = "whsec_"
# The run statuses whose ending is notified (a cancel is the user's own doing).
ENDING_EVENTS: dict[str, WebhookEvent] = {"completed": "run.completed", "failed": "run.failed"}
DELIVERIES_KEPT = 100  # per user: older deliveries leave the log as new ones are made


def new_secret() -> str:
    """Return a new signing secret (32 random bytes, URL-safe base64)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def run_data(run: Run) -> dict[str, Any]:
    """What a run notification says about the run (the rest is one GET /runs/{id} away)."""
    dumped = run.model_dump(mode="json")
    fields = ("run_id", "session_id", "pipeline", "status", "error", "usage", "created_at")
    return {**{k: dumped[k] for k in fields}, "finished_at": dumped["finished_at"]}


async def enqueue_delivery(redis: ArqRedis, keys: RedisKeys, delivery_id: str) -> None:
    """Queue the delivery's job (its id is stable: never queued twice) and wake a worker."""
    job_id = keys.webhook_job_id(delivery_id)
    job = await redis.enqueue_job(
        WEBHOOK_JOB, delivery_id, _job_id=job_id, _queue_name=keys.arq_queue()
    )
    if job is not None:
        await redis.publish(keys.arq_wake_channel(), job_id)


async def schedule_delivery(
    store: Store, redis: ArqRedis, keys: RedisKeys, user_id: str, *, event: WebhookEvent,
    data: dict[str, Any], run: Run | None = None,
) -> WebhookDelivery:  # fmt: skip
    """Write the delivery (its body fixed once) to the log and queue its job."""
    delivery = WebhookDelivery(
        user_id=user_id, event=event, body="",
        run_id=run.run_id if run else None, session_id=run.session_id if run else None,
    )  # fmt: skip
    envelope = {
        "id": delivery.delivery_id,
        "event": event,
        "created_at": delivery.model_dump(mode="json")["created_at"],
        "data": data,
    }
    delivery.body = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)
    await store.insert_webhook_delivery(delivery)
    await enqueue_delivery(redis, keys, delivery.delivery_id)
    await store.prune_webhook_deliveries(user_id, keep=DELIVERIES_KEPT)
    return delivery


async def notify_run(
    store: Store, redis: ArqRedis, keys: RedisKeys, run: Run, event: WebhookEvent
) -> WebhookDelivery | None:
    """Schedule a notification of the run's user, unless they have no webhook or watch.

    Never raises: a notification that cannot be scheduled is logged and dropped, so the
    run's own transition (whose follow-up this is) is not retried because of it.
    """
    try:
        if await store.get_webhook(run.user_id) is None:
            return None
        if await watching(redis, keys, run.session_id):
            return None
        return await schedule_delivery(
            store, redis, keys, run.user_id, event=event, data=run_data(run), run=run
        )
    except Exception:
        log.exception("could not schedule the %s webhook of run %s", event, run.run_id)
        return None


class WebhookService:
    """The REST side: set, show and remove a user's webhook; test it; read the log."""

    def __init__(self, store: Store, redis: ArqRedis, keys: RedisKeys) -> None:
        self._store = store
        self._redis = redis
        self._keys = keys

    async def put(self, user: User, url: str, secret: str | None) -> tuple[Webhook, str | None]:
        """Set the user's webhook; return it and the secret if one was generated (once)."""
        current = await self._store.get_webhook(user.user_id)
        shown = None
        if secret is None:
            if current is not None:
                secret = current.secret
            else:
                secret = shown = new_secret()
        now = utcnow()
        webhook = Webhook(
            user_id=user.user_id, url=url, secret=secret,
            created_at=current.created_at if current else now, updated_at=now,
        )  # fmt: skip
        await self._store.put_webhook(webhook)
        return webhook, shown

    async def get(self, user: User) -> Webhook:
        """Return the user's webhook (404 if none)."""
        webhook = await self._store.get_webhook(user.user_id)
        if webhook is None:
            raise NotFound("no webhook is set")
        return webhook

    async def delete(self, user: User) -> None:
        """Remove the user's webhook (404 if none); pending deliveries then fail."""
        if not await self._store.delete_webhook(user.user_id):
            raise NotFound("no webhook is set")

    async def test(self, user: User) -> WebhookDelivery:
        """Send a ``webhook.test`` delivery now, watched session or not."""
        await self.get(user)
        data = {"message": "a test delivery from Chorus", "user_id": user.user_id}
        return await schedule_delivery(
            self._store, self._redis, self._keys, user.user_id, event="webhook.test", data=data
        )

    async def deliveries(self, user: User, limit: int) -> list[WebhookDelivery]:
        """Return the user's newest deliveries, newest first."""
        return await self._store.list_webhook_deliveries(user.user_id, limit=limit)
