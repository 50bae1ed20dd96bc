"""API keys over REST: create (shown once), list, revoke; usable as Bearer; stored hashed."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient

from server import keys
from server.apikeys.service import TooManyKeys
from server.config import Limits
from tests.conftest import ClientFactory
from tests.support.api import error_of, make_user

Client = TestClient[Any, web.Application]


async def _create(client: Client, auth: dict[str, str], name: str = "laptop") -> dict[str, Any]:
    resp = await client.post("/api/v1/api-keys", json={"name": name}, headers=auth)
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_create_list_and_use_a_key(client: Client) -> None:
    user = await make_user(client)
    created = await _create(client, user.auth)
    key = created["key"]
    assert key.startswith("chk_") and len(key) > 40
    assert created["prefix"] == key[:12] and created["name"] == "laptop"
    assert created["revoked_at"] is None and "key_hash" not in created
    listed = await (await client.get("/api/v1/api-keys", headers=user.auth)).json()
    assert [k["key_id"] for k in listed["items"]] == [created["key_id"]]
    assert "key" not in listed["items"][0] and "key_hash" not in listed["items"][0]
    me = await client.get("/api/v1/auth/me", headers=_bearer(key))
    assert me.status == 200
    assert (await me.json())["user"]["user_id"] == user.user["user_id"]


async def test_the_store_holds_only_a_keyed_hash(client: Client) -> None:
    user = await make_user(client)
    created = await _create(client, user.auth)
    stored = await client.app[keys.STORE].list_api_keys(user.user["user_id"])
    assert len(stored) == 1
    assert created["key"] not in stored[0].model_dump_json()
    assert stored[0].key_hash == client.app[keys.API_KEYS].digest(created["key"])
    assert len(stored[0].key_hash) == 64


async def test_revoked_key_stops_working(client: Client) -> None:
    user = await make_user(client)
    created = await _create(client, user.auth)
    resp = await client.delete(f"/api/v1/api-keys/{created['key_id']}", headers=user.auth)
    assert resp.status == 204
    resp = await client.get("/api/v1/auth/me", headers=_bearer(created["key"]))
    assert await error_of(resp) == (401, "unauthorized")
    listed = await (await client.get("/api/v1/api-keys", headers=user.auth)).json()
    assert listed["items"][0]["revoked_at"] is not None
    # Denied by jti too: a web process back from a Redis outage closes the key's sockets.
    denied = client.app[keys.REDIS_KEYS].jwt_denied(f"apikey-{created['key_id']}")
    assert await client.app[keys.REDIS].exists(denied) == 1
    again = await client.delete(f"/api/v1/api-keys/{created['key_id']}", headers=user.auth)
    assert again.status == 204  # idempotent


async def test_wrong_or_unknown_key_is_unauthorized(client: Client) -> None:
    user = await make_user(client)
    created = await _create(client, user.auth)
    forged = created["key"][:-2] + ("AA" if not created["key"].endswith("AA") else "BB")
    for token in (forged, "chk_", "chk_nope"):
        resp = await client.get("/api/v1/auth/me", headers=_bearer(token))
        assert await error_of(resp) == (401, "unauthorized")


async def test_other_users_key_is_not_found(client: Client) -> None:
    ann, bob = await make_user(client, "ann"), await make_user(client, "bob")
    created = await _create(client, ann.auth)
    resp = await client.delete(f"/api/v1/api-keys/{created['key_id']}", headers=bob.auth)
    assert await error_of(resp) == (404, "not_found")
    still = await client.get("/api/v1/auth/me", headers=_bearer(created["key"]))
    assert still.status == 200
    bobs = await (await client.get("/api/v1/api-keys", headers=bob.auth)).json()
    assert bobs["items"] == []


async def test_a_key_cannot_manage_keys(client: Client) -> None:
    user = await make_user(client)
    key = (await _create(client, user.auth))["key"]
    for method, path in (("POST", "/api/v1/api-keys"), ("GET", "/api/v1/api-keys")):
        resp = await client.request(method, path, json={}, headers=_bearer(key))
        assert await error_of(resp) == (403, "forbidden")


async def test_bad_bodies_are_422(client: Client) -> None:
    user = await make_user(client)
    for body in ({"name": 5}, {"name": "x" * 101}, {"nom": "x"}):
        resp = await client.post("/api/v1/api-keys", json=body, headers=user.auth)
        assert await error_of(resp) == (422, "invalid_request")


async def test_active_keys_per_user_are_capped(
    aiohttp_client: ClientFactory, settings: Any
) -> None:
    from server.app import create_app

    client = await aiohttp_client(
        create_app(settings.replace(api_keys_per_user=2, limits=Limits(api_per_user=10_000)))
    )
    user = await make_user(client)
    first = await _create(client, user.auth)
    await _create(client, user.auth)
    resp = await client.post("/api/v1/api-keys", json={}, headers=user.auth)
    assert await error_of(resp) == (409, TooManyKeys.code)
    await client.delete(f"/api/v1/api-keys/{first['key_id']}", headers=user.auth)
    await _create(client, user.auth)  # a revoked key frees its place


async def test_key_opens_a_websocket_and_revoking_closes_it(client: Client) -> None:
    user = await make_user(client)
    created = await _create(client, user.auth)
    ws = await client.ws_connect("/api/v1/ws", headers=_bearer(created["key"]))
    ready = await ws.receive_json(timeout=5)
    assert ready["type"] == "ready" and ready["user"]["user_id"] == user.user["user_id"]
    await client.delete(f"/api/v1/api-keys/{created['key_id']}", headers=user.auth)
    async with asyncio.timeout(5):
        msg = await ws.receive()
    assert msg.type is WSMsgType.CLOSE and msg.data == 1008
    await ws.close()
