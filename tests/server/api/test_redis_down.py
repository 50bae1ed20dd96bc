"""While Redis is unreachable the API answers 503 `unavailable` with Retry-After (never 500),
token checks fail closed, and a WebSocket command gets an `unavailable` error frame."""

from __future__ import annotations

from typing import Any

from aiohttp import WSCloseCode, WSMsgType
from redis.exceptions import ConnectionError as RedisConnectionError

from server import keys
from server.app import create_app
from server.config import Settings
from server.redis_proc import free_port
from server.store.models import User
from server.ws.connection import error_for
from tests.conftest import ClientFactory


async def test_api_answers_503_while_redis_is_down(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    down = settings.replace(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    client = await aiohttp_client(create_app(down))
    user = User(email="ann@example.test", password_hash="x")
    token, _claims = client.app[keys.TOKENS].issue(user)  # a valid token: only Redis is down
    auth = {"Authorization": f"Bearer {token}"}
    for method, path in (("GET", "/api/v1/sessions"), ("GET", "/api/v1/usage"),
                         ("POST", "/api/v1/sessions")):  # fmt: skip
        resp = await client.request(method, path, headers=auth, json={})
        body: Any = await resp.json()
        assert resp.status == 503, (path, body)
        assert body["error"]["code"] == "unavailable"
        assert int(resp.headers["Retry-After"]) > 0
    health = await client.get("/healthz")
    assert health.status == 200  # the process itself is fine


def test_a_websocket_command_meeting_a_redis_outage_is_unavailable() -> None:
    code, message = error_for(RedisConnectionError("Connection refused")) or ("", "")
    assert code == "unavailable" and "try again" in message


async def test_a_socket_authenticating_while_redis_is_down_is_told_to_retry(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    down = settings.replace(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    client = await aiohttp_client(create_app(down))
    token, _claims = client.app[keys.TOKENS].issue(User(email="b@example.test", password_hash="x"))
    ws = await client.ws_connect("/api/v1/ws")
    await ws.send_json({"type": "auth", "token": token})
    msg = await ws.receive(timeout=30)
    assert msg.type is WSMsgType.CLOSE and msg.data == WSCloseCode.TRY_AGAIN_LATER  # 1013
