"""The webhook resource over REST: validation, the secret shown once, ownership."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.notify import webhooks
from tests.support.api import error_of, make_user

Client = TestClient[Any, web.Application]
HOOK = "/api/v1/webhook"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.test/hook",
        "javascript:alert(1)",
        "https:///no-host",
        "example.test/hook",
        "https://example.test/" + "a" * 2048,
        "https://exa mple.test/",
        "http://example.test:99999/",
        "",
    ],
)
async def test_bad_urls_are_refused(client: Client, url: str) -> None:
    user = await make_user(client)
    resp = await client.put(HOOK, json={"url": url}, headers=user.auth)
    assert await error_of(resp) == (422, "invalid_request")
    assert await error_of(await client.get(HOOK, headers=user.auth)) == (404, "not_found")


async def test_the_generated_secret_is_shown_once(client: Client) -> None:
    user = await make_user(client)
    assert await error_of(await client.get(HOOK, headers=user.auth)) == (404, "not_found")
    resp = await client.put(HOOK, json={"url": "https://example.test/a"}, headers=user.auth)
    assert resp.status == 200
    created = await resp.json()
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 40
    shown = await (await client.get(HOOK, headers=user.auth)).json()
    assert shown == {k: created[k] for k in ("url", "created_at", "updated_at")}
    # A new URL without a secret keeps the secret, and does not show it.
    resp = await client.put(HOOK, json={"url": "http://example.test/b"}, headers=user.auth)
    moved = await resp.json()
    assert "secret" not in moved
    assert moved["url"] == "http://example.test/b"
    assert moved["created_at"] == created["created_at"]
    stored = await client.app[keys.STORE].get_webhook(user.user["user_id"])
    assert stored is not None and stored.secret == created["secret"]


async def test_a_given_secret_is_used_and_never_echoed(client: Client) -> None:
    user = await make_user(client)
    body = {"url": "https://example.test/a", "secret": "my-own-secret-0123456789"}
    resp = await client.put(HOOK, json=body, headers=user.auth)
    assert resp.status == 200
    assert "secret" not in await resp.json()
    stored = await client.app[keys.STORE].get_webhook(user.user["user_id"])
    assert stored is not None and stored.secret == body["secret"]
    short = {"url": body["url"], "secret": "short"}
    assert await error_of(await client.put(HOOK, json=short, headers=user.auth)) == (
        422, "invalid_request",
    )  # fmt: skip


async def test_delete_and_test_need_a_webhook(client: Client) -> None:
    user = await make_user(client)
    assert await error_of(await client.delete(HOOK, headers=user.auth)) == (404, "not_found")
    resp = await client.post(f"{HOOK}/test", headers=user.auth)
    assert await error_of(resp) == (404, "not_found")
    await client.put(HOOK, json={"url": "https://example.test/a"}, headers=user.auth)
    assert (await client.delete(HOOK, headers=user.auth)).status == 204
    assert await error_of(await client.get(HOOK, headers=user.auth)) == (404, "not_found")


async def test_deliveries_are_the_callers_own(client: Client) -> None:
    ann, bob = await make_user(client, "ann"), await make_user(client, "bob")
    await client.put(HOOK, json={"url": "https://example.test/a"}, headers=ann.auth)
    resp = await client.post(f"{HOOK}/test", headers=ann.auth)
    assert resp.status == 202
    delivery = (await resp.json())["delivery"]
    assert delivery["event"] == "webhook.test"
    assert delivery["status"] == "pending"  # no worker runs in this test
    ann_log = await (await client.get(f"{HOOK}/deliveries", headers=ann.auth)).json()
    assert [d["delivery_id"] for d in ann_log["items"]] == [delivery["delivery_id"]]
    bob_log = await (await client.get(f"{HOOK}/deliveries", headers=bob.auth)).json()
    assert bob_log == {"items": []}
    resp = await client.get(f"{HOOK}/deliveries?limit=0", headers=ann.auth)
    assert await error_of(resp) == (422, "invalid_request")


async def test_webhook_needs_auth(client: Client) -> None:
    assert await error_of(await client.get(HOOK)) == (401, "unauthorized")
    resp = await client.put(HOOK, json={"url": "https://example.test/a"})
    assert await error_of(resp) == (401, "unauthorized")


async def test_the_log_keeps_the_newest(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webhooks, "DELIVERIES_KEPT", 2)
    user = await make_user(client)
    await client.put(HOOK, json={"url": "https://example.test/a"}, headers=user.auth)
    made = []
    for _ in range(3):
        resp = await client.post(f"{HOOK}/test", headers=user.auth)
        delivery = (await resp.json())["delivery"]
        made.append(delivery["delivery_id"])
        # The next one in a later millisecond (timestamps have ms precision), so which
        # are the newest is not decided by a tie.
        await asyncio.sleep(0.002)
    log = await (await client.get(f"{HOOK}/deliveries", headers=user.auth)).json()
    assert [d["delivery_id"] for d in log["items"]] == made[:0:-1]
