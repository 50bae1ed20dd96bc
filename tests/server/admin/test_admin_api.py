"""The admin role and API over a real Redis and store: the first user is admin, others get
403; an admin lists users, sets budgets, disables a user — whose tokens, API keys and open
sockets and streams stop at once on every web process — and enables them again."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis

from server import keys
from tests.server.sse.conftest import open_stream
from tests.server.ws.conftest import MakeWs, Ws, recv_close, until
from tests.support.api import User, error_of

USERS = "/api/v1/admin/users"


async def _admin_and_user(ws_tools: Ws) -> tuple[User, User]:
    admin = await ws_tools.user("root")  # the first account: an admin (FIRST_USER_ADMIN)
    user = await ws_tools.user("bob")
    assert admin.user["role"] == "admin" and user.user["role"] == "user"
    return admin, user


async def test_only_admins_may_use_the_admin_api(ws_tools: Ws) -> None:
    client = ws_tools.client
    admin, user = await _admin_and_user(ws_tools)
    assert await error_of(await client.get(USERS, headers=user.auth)) == (403, "forbidden")
    patch = await client.patch(
        f"{USERS}/{user.user['user_id']}", json={"role": "admin"}, headers=user.auth
    )
    assert await error_of(patch) == (403, "forbidden")
    client.session.cookie_jar.clear()  # the login cookie would authenticate bob
    assert await error_of(await client.get(USERS)) == (401, "unauthorized")

    page = await (await client.get(USERS, headers=admin.auth)).json()
    assert page["total"] == 2 and [u["email"] for u in page["items"]] == [
        admin.email, user.email,
    ]  # fmt: skip
    assert "password_hash" not in page["items"][0]
    assert page["items"][1]["disabled"] is False
    missing = await client.get(f"{USERS}/nope", headers=admin.auth)
    assert await error_of(missing) == (404, "not_found")


async def test_an_admin_sets_a_users_budget_and_role(make_ws: MakeWs) -> None:
    tools = await make_ws(budget_tokens_per_day=1000, budget_cost_per_day=1.0)
    client = tools.client
    admin, user = await _admin_and_user(tools)
    target = f"{USERS}/{user.user['user_id']}"
    detail = await (await client.get(target, headers=admin.auth)).json()
    assert detail["budget"]["tokens"] == {"limit": 1000, "used": 0, "remaining": 1000}

    resp = await client.patch(
        target, json={"budget_tokens_per_day": 50, "budget_cost_per_day": 0}, headers=admin.auth
    )
    body = await resp.json()
    assert resp.status == 200, body
    assert (body["user"]["budget_tokens_per_day"], body["user"]["budget_cost_per_day"]) == (50, 0)
    usage = await (await client.get("/api/v1/usage", headers=user.auth)).json()
    assert usage["budget"]["tokens"]["limit"] == 50
    # 0: unlimited for this user, whatever the default
    assert usage["budget"]["cost_usd"] == {"limit": None, "used": 0.0, "remaining": None}

    # null goes back to the server's default; a bad value is a 422 naming the field.
    back = await client.patch(target, json={"budget_tokens_per_day": None}, headers=admin.auth)
    assert (await back.json())["user"]["budget_tokens_per_day"] is None
    bad = await client.patch(target, json={"budget_tokens_per_day": -1}, headers=admin.auth)
    assert await error_of(bad) == (422, "invalid_request")

    promoted = await client.patch(target, json={"role": "admin"}, headers=admin.auth)
    assert (await promoted.json())["user"]["role"] == "admin"
    assert (await client.get(USERS, headers=user.auth)).status == 200
    # An admin cannot lock themselves out.
    self_disable = await client.patch(
        f"{USERS}/{admin.user['user_id']}", json={"disabled": True}, headers=admin.auth
    )
    assert await error_of(self_disable) == (422, "invalid_request")


async def test_disabling_a_user_stops_their_tokens_keys_sockets_and_streams_at_once(
    ws_tools: Ws,
) -> None:
    client = ws_tools.client
    admin, user = await _admin_and_user(ws_tools)
    other = await ws_tools.user("carol")
    key = (await (await client.post("/api/v1/api-keys", json={}, headers=user.auth)).json())["key"]
    their_ws = await ws_tools.connect(user)
    other_ws = await ws_tools.connect(other)
    stream = await open_stream(client, await ws_tools.session(user), user.auth)
    await stream.subscribed()

    resp = await client.patch(
        f"{USERS}/{user.user['user_id']}", json={"disabled": True}, headers=admin.auth
    )
    assert resp.status == 200 and (await resp.json())["user"]["disabled"] is True
    assert await recv_close(their_ws) == 4403
    assert their_ws.close_code == 4403
    async with asyncio.timeout(5):
        assert await stream.resp.content.read() == b""  # the event stream ended too
    for auth in (user.auth, {"Authorization": f"Bearer {key}"}):
        assert await error_of(await client.get("/api/v1/auth/me", headers=auth)) == (
            401, "unauthorized",
        )  # fmt: skip
    refused = await client.ws_connect("/api/v1/ws", headers=user.auth)
    assert await recv_close(refused) == 4401
    login = await client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": user.password}
    )
    assert await error_of(login) == (401, "invalid_credentials")

    # Everyone else is untouched.
    pong = await ws_tools.call(other_ws, {"id": 1, "type": "ping"})
    assert pong == {"id": 1, "type": "result", "ok": True, "data": {}}
    assert (await client.get("/api/v1/auth/me", headers=other.auth)).status == 200

    # Enabled again: the same token works.
    await client.patch(
        f"{USERS}/{user.user['user_id']}", json={"disabled": False}, headers=admin.auth
    )
    assert (await client.get("/api/v1/auth/me", headers=user.auth)).status == 200
    await other_ws.close()


async def test_a_disable_missed_while_the_hub_was_away_closes_the_socket_on_reconnect(
    ws_tools: Ws, redis_url: str
) -> None:
    admin, user = await _admin_and_user(ws_tools)
    ws = await ws_tools.connect(user)
    app = ws_tools.client.app
    hub = app[keys.EVENT_HUB]
    redis = Redis.from_url(redis_url)
    await redis.client_kill_filter(_type="pubsub")
    await until(lambda: not hub.connected.is_set())
    # The store write and the flag land while this web process hears nothing.
    await app[keys.STORE].update_user(user.user["user_id"], {"disabled": True})
    await redis.set(app[keys.REDIS_KEYS].user_disabled(user.user["user_id"]), "1")
    assert await recv_close(ws) == 4403
    await redis.aclose()
    assert admin.user["role"] == "admin"


async def test_a_socket_opened_before_the_disable_cannot_start_a_run(ws_tools: Ws) -> None:
    """The WS keeps the user it authenticated; starting LLM work reads the stored one."""
    admin, user = await _admin_and_user(ws_tools)
    session_id = await ws_tools.session(user)
    ws = await ws_tools.connect(user)
    app = ws_tools.client.app
    await app[keys.STORE].update_user(user.user["user_id"], {"disabled": True})  # no broadcast
    answer: dict[str, Any] = await ws_tools.call(
        ws, {"id": 1, "type": "send", "session_id": session_id, "content": "hi"}
    )
    assert answer["type"] == "error" and answer["error"]["code"] == "unauthorized"
    assert admin.user["role"] == "admin"
    await ws.close()


async def test_a_socket_authenticated_as_the_user_is_disabled_closes_at_once(ws_tools: Ws) -> None:
    """A disable landing between the handshake's check and the hub's attach: the connection's
    own check after attaching sees the flag (here only the flag is set, as it lands first)."""
    _admin, user = await _admin_and_user(ws_tools)
    app = ws_tools.client.app
    await app[keys.REDIS].set(app[keys.REDIS_KEYS].user_disabled(user.user["user_id"]), "1")
    ws = await ws_tools.client.ws_connect("/api/v1/ws", headers=user.auth)
    assert await recv_close(ws) == 4403
