"""Store contract for webhooks (one per user) and their delivery log, on every backend."""

from __future__ import annotations

from typing import Any

import pytest

from server.store.base import DuplicateError, Store
from server.store.models import Webhook, WebhookAttempt, WebhookDelivery


def _delivery(user_id: str, **fields: Any) -> WebhookDelivery:
    return WebhookDelivery(user_id=user_id, event="run.completed", body="{}", **fields)


async def test_one_webhook_per_user_put_replaces(store: Store, make: Any) -> None:
    assert await store.get_webhook("ann") is None
    first = Webhook(user_id="ann", url="https://a.example.test/hook", secret="s1")
    await store.put_webhook(first)
    await store.put_webhook(Webhook(user_id="bob", url="https://b.example.test/", secret="s2"))
    assert await store.get_webhook("ann") == first
    second = first.model_copy(update={"url": "https://a.example.test/v2", "updated_at": make.at(9)})
    await store.put_webhook(second)
    assert await store.get_webhook("ann") == second
    assert (await store.get_webhook("bob")) is not None
    assert await store.delete_webhook("ann") is True
    assert await store.delete_webhook("ann") is False
    assert await store.get_webhook("ann") is None
    assert (await store.get_webhook("bob")) is not None


async def test_deliveries_listed_per_user_newest_first(store: Store, make: Any) -> None:
    old, new = _delivery("ann", created_at=make.at(1)), _delivery("ann", created_at=make.at(5))
    other = _delivery("bob", created_at=make.at(3))
    for delivery in (new, other, old):
        await store.insert_webhook_delivery(delivery)
    listed = await store.list_webhook_deliveries("ann", limit=10)
    assert [d.delivery_id for d in listed] == [new.delivery_id, old.delivery_id]
    assert [d.delivery_id for d in await store.list_webhook_deliveries("ann", limit=1)] == [
        new.delivery_id
    ]
    assert await store.list_webhook_deliveries("ann", limit=0) == []
    assert await store.get_webhook_delivery(other.delivery_id) == other
    with pytest.raises(DuplicateError):
        await store.insert_webhook_delivery(old)


async def test_delivery_update_is_conditional(store: Store, make: Any) -> None:
    delivery = _delivery("ann")
    await store.insert_webhook_delivery(delivery)
    attempt = WebhookAttempt(attempt=1, at=make.at(2), status_code=500, error="HTTP 500")
    fields = {"attempts": 1, "status_code": 500, "attempt_log": [attempt]}
    updated = await store.update_webhook_delivery(
        delivery.delivery_id, fields, expect={"attempts": 0, "status": "pending"}
    )
    assert updated is not None
    assert updated.attempts == 1 and updated.attempt_log == [attempt]
    # A second execution of the same attempt (expecting 0 attempts) writes nothing.
    again = await store.update_webhook_delivery(
        delivery.delivery_id, {"attempts": 1}, expect={"attempts": 0}
    )
    assert again is None
    assert await store.get_webhook_delivery(delivery.delivery_id) == updated
    assert await store.update_webhook_delivery("missing", {"attempts": 1}) is None


async def test_prune_keeps_the_newest_of_one_user(store: Store, make: Any) -> None:
    mine = [_delivery("ann", created_at=make.at(i)) for i in range(5)]
    theirs = _delivery("bob", created_at=make.at(0))
    for delivery in [*mine, theirs]:
        await store.insert_webhook_delivery(delivery)
    assert await store.prune_webhook_deliveries("ann", keep=2) == 3
    kept = await store.list_webhook_deliveries("ann", limit=10)
    assert [d.delivery_id for d in kept] == [mine[4].delivery_id, mine[3].delivery_id]
    assert await store.prune_webhook_deliveries("ann", keep=2) == 0
    assert await store.get_webhook_delivery(theirs.delivery_id) == theirs
    assert await store.prune_webhook_deliveries("ann", keep=0) == 2
    assert await store.list_webhook_deliveries("ann", limit=10) == []
