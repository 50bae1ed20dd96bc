"""Presence: who watches a session, in Redis, as any process sees it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from server import keys
from server.events.presence import Presence, watching
from server.redis_keys import RedisKeys
from server.ws.connection import Connection
from tests.support.api import make_user

KEYS = RedisKeys("t")


async def _until_unwatched(redis: Redis, redis_keys: RedisKeys, session_id: str) -> None:
    """Poll until nobody watches the session (bounded)."""
    async with asyncio.timeout(10):
        while True:
            if not await watching(redis, redis_keys, session_id):
                return
            await asyncio.sleep(0.02)


async def _watching_socket(client: TestClient[Any, web.Application]) -> tuple[Any, str]:
    """A socket of a new user subscribed to a new session of theirs; and the session id."""
    user = await make_user(client)
    resp = await client.post("/api/v1/sessions", json={}, headers=user.auth)
    sid = (await resp.json())["session_id"]
    ws = await client.ws_connect("/api/v1/ws", headers=user.auth)
    await ws.receive_json()  # ready
    await ws.send_json({"id": 1, "type": "subscribe", "session_id": sid})
    assert (await ws.receive_json())["id"] == 1
    assert await watching(client.app[keys.REDIS], client.app[keys.REDIS_KEYS], sid)
    return ws, sid


async def _redis_ms(redis: Redis) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def test_enter_and_leave(redis: Redis) -> None:
    one, other = Presence(redis, KEYS, 30), Presence(redis, KEYS, 30)  # two web processes
    assert not await watching(redis, KEYS, "s1")
    a = await one.enter("s1")
    b = await other.enter("s1")
    assert await watching(redis, KEYS, "s1")
    assert not await watching(redis, KEYS, "s2")
    one.leave("s1", a)
    await one.settled()
    assert await watching(redis, KEYS, "s1")  # the other process's subscriber remains
    other.leave("s1", b)
    other.leave("s1", b)  # twice: nothing more to do
    await other.settled()
    assert not await watching(redis, KEYS, "s1")


async def test_a_crashed_process_watchers_lapse(redis: Redis) -> None:
    crashed = Presence(redis, KEYS, 0.2)  # never refreshed, never left: as after a crash
    await crashed.enter("s1")
    assert await watching(redis, KEYS, "s1")
    await _until_unwatched(redis, KEYS, "s1")
    assert await redis.exists(KEYS.session_watchers("s1")) == 0  # the key expires too


async def test_a_live_process_keeps_its_watchers(redis: Redis) -> None:
    presence = Presence(redis, KEYS, 1.5)
    presence.start()
    try:
        member = await presence.enter("s1")
        first = await redis.zscore(KEYS.session_watchers("s1"), member)
        assert first is not None
        async with asyncio.timeout(20):  # until the first expiry has passed (Redis clock)
            while True:
                if await _redis_ms(redis) > first:
                    break
                await asyncio.sleep(0.1)
        assert await watching(redis, KEYS, "s1")
        later = await redis.zscore(KEYS.session_watchers("s1"), member)
        assert later is not None and later > first
    finally:
        await presence.close()
    assert not await watching(redis, KEYS, "s1")  # closing removed it


async def test_unsubscribe_answers_after_the_watcher_is_gone(
    client: TestClient[Any, web.Application], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The order is forced by the code, not timing: the removal is a task of its own, and
    the answer must wait for it (else a run ending right after still sees a watcher)."""
    order: list[str] = []
    remove = Presence._remove

    async def recorded_remove(self: Presence, session_id: str, member: str) -> None:
        await remove(self, session_id, member)
        order.append("removed")

    send_result = Connection.send_result

    def recorded_send_result(self: Connection, cmd_id: int, data: dict[str, Any]) -> None:
        order.append(f"answered {cmd_id}")
        send_result(self, cmd_id, data)

    monkeypatch.setattr(Presence, "_remove", recorded_remove)
    monkeypatch.setattr(Connection, "send_result", recorded_send_result)
    ws, sid = await _watching_socket(client)
    redis, redis_keys = client.app[keys.REDIS], client.app[keys.REDIS_KEYS]
    await ws.send_json({"id": 2, "type": "unsubscribe", "session_id": sid})
    assert (await ws.receive_json())["id"] == 2
    assert order == ["answered 1", "removed", "answered 2"]
    assert not await watching(redis, redis_keys, sid)
    await ws.close()


async def test_a_closed_socket_stops_watching(client: TestClient[Any, web.Application]) -> None:
    ws, sid = await _watching_socket(client)
    redis, redis_keys = client.app[keys.REDIS], client.app[keys.REDIS_KEYS]
    await ws.close()
    # Removed when the server sees the close, long before PRESENCE_TTL_S (30 s) would lapse it.
    await _until_unwatched(redis, redis_keys, sid)
