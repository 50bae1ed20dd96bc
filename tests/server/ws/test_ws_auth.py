"""The auth phase of /api/v1/ws: cookie, bearer header or first frame; 4401, 403, 1008."""

from __future__ import annotations

import time

import jwt
import pytest
from aiohttp import WSServerHandshakeError

from tests.conftest import ALLOWED_ORIGIN

from .conftest import WS_PATH, MakeWs, Ws, recv, recv_close


async def test_cookie_auth_with_allowed_origin(ws_tools: Ws) -> None:
    user = await ws_tools.user()  # logging in put the session cookie in the client's jar
    ws = await ws_tools.client.ws_connect(WS_PATH, headers={"Origin": ALLOWED_ORIGIN})
    assert await recv(ws) == {"type": "ready", "user": user.user}
    await ws.close()


async def test_cookie_auth_from_own_origin(ws_tools: Ws) -> None:
    user = await ws_tools.user()
    own = f"http://{ws_tools.client.host}:{ws_tools.client.port}"
    ws = await ws_tools.client.ws_connect(WS_PATH, headers={"Origin": own})
    assert await recv(ws) == {"type": "ready", "user": user.user}
    await ws.close()


async def test_cookie_from_foreign_origin_is_403_before_upgrade(ws_tools: Ws) -> None:
    await ws_tools.user()
    with pytest.raises(WSServerHandshakeError) as raised:
        await ws_tools.client.ws_connect(WS_PATH, headers={"Origin": "http://evil.example"})
    assert raised.value.status == 403


async def test_cookie_without_origin_is_403(ws_tools: Ws) -> None:
    await ws_tools.user()
    with pytest.raises(WSServerHandshakeError) as raised:
        await ws_tools.client.ws_connect(WS_PATH)
    assert raised.value.status == 403


async def test_bearer_header_auth(ws_tools: Ws) -> None:
    user = await ws_tools.user()
    ws = await ws_tools.connect(user)  # asserts the ready frame
    await ws.close()


async def test_first_frame_auth(ws_tools: Ws) -> None:
    user = await ws_tools.user()
    ws_tools.client.session.cookie_jar.clear()
    ws = await ws_tools.client.ws_connect(WS_PATH)
    await ws.send_json({"type": "auth", "token": user.token})
    assert await recv(ws) == {"type": "ready", "user": user.user}
    await ws.close()


async def test_auth_timeout_closes_4401(make_ws: MakeWs) -> None:
    tools = await make_ws(ws_auth_timeout_s=0.2)
    ws = await tools.client.ws_connect(WS_PATH)
    assert await recv_close(ws) == 4401


async def test_bad_token_in_first_frame_closes_4401(ws_tools: Ws) -> None:
    ws = await ws_tools.client.ws_connect(WS_PATH)
    await ws.send_json({"type": "auth", "token": "not-a-jwt"})
    assert await recv_close(ws) == 4401


async def test_bad_bearer_header_closes_4401(ws_tools: Ws) -> None:
    ws = await ws_tools.client.ws_connect(WS_PATH, headers={"Authorization": "Bearer nope"})
    assert await recv_close(ws) == 4401


async def test_alg_none_token_closes_4401(ws_tools: Ws) -> None:
    user = await ws_tools.user()
    ws_tools.client.session.cookie_jar.clear()
    now = int(time.time())
    claims = {"sub": user.user["user_id"], "iat": now, "exp": now + 600, "jti": "forged"}
    forged = jwt.encode(claims, None, algorithm="none")
    ws = await ws_tools.client.ws_connect(WS_PATH)
    await ws.send_json({"type": "auth", "token": forged})
    assert await recv_close(ws) == 4401


async def test_first_frame_other_than_auth_closes_4401(ws_tools: Ws) -> None:
    ws = await ws_tools.client.ws_connect(WS_PATH)
    await ws.send_json({"id": 1, "type": "ping"})
    assert await recv_close(ws) == 4401


async def test_binary_first_frame_closes_4401(ws_tools: Ws) -> None:
    ws = await ws_tools.client.ws_connect(WS_PATH)
    await ws.send_bytes(b"\x00")
    assert await recv_close(ws) == 4401


async def test_client_closing_during_auth_is_quiet(ws_tools: Ws) -> None:
    ws = await ws_tools.client.ws_connect(WS_PATH)
    await ws.close()
    resp = await ws_tools.client.get("/healthz")
    assert resp.status == 200


async def test_revoked_token_closes_1008_at_logout(ws_tools: Ws) -> None:
    user = await ws_tools.user()
    ws = await ws_tools.connect(user)
    resp = await ws_tools.client.post("/api/v1/auth/logout", headers=user.auth)
    assert resp.status == 204
    assert await recv_close(ws) == 1008


async def test_already_revoked_token_closes_4401(ws_tools: Ws) -> None:
    user = await ws_tools.user()
    resp = await ws_tools.client.post("/api/v1/auth/logout", headers=user.auth)
    assert resp.status == 204
    ws = await ws_tools.client.ws_connect(WS_PATH, headers=user.auth)
    assert await recv_close(ws) == 4401


async def test_expired_token_closes_1008_at_exp(make_ws: MakeWs) -> None:
    tools = await make_ws(jwt_ttl_s=2)
    user = await tools.user()
    ws = await tools.connect(user)
    assert await recv_close(ws, within_s=4) == 1008
