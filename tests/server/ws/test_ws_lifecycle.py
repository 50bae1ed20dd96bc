"""Slow consumers (1013), the hub's Redis reconnect (resync) and shutdown (1001)."""

from __future__ import annotations

import asyncio

from aiohttp import WSMsgType
from redis.asyncio import Redis

from server import keys

from .conftest import MakeWs, Ws, recv, recv_close, until


async def test_slow_consumer_is_closed_1013(make_ws: MakeWs) -> None:
    tools = await make_ws(ws_queue_size=4)
    user = await tools.user()
    session_id = await tools.session(user)
    ws = await tools.connect(user)
    await tools.call(ws, {"id": 1, "type": "subscribe", "session_id": session_id})
    # The client reads nothing while ~24 MB of events go out: socket buffers fill, the
    # writer waits, the outbox overflows.
    bus = tools.client.app[keys.EVENT_BUS]
    big = "x" * 60_000
    for _ in range(400):
        await bus.publish(session_id, "stage.delta", {"stage": "draft", "text": big})
    assert await recv_close(ws, within_s=10) == 1013
    registry = tools.client.app[keys.METRICS].registry
    assert registry.get_sample_value("chorus_ws_slow_consumer_total") == 1


async def test_hub_reconnects_and_asks_for_resync(ws_tools: Ws, redis_url: str) -> None:
    user = await ws_tools.user()
    session_id = await ws_tools.session(user)
    ws = await ws_tools.connect(user)
    sub = await ws_tools.call(ws, {"id": 1, "type": "subscribe", "session_id": session_id})
    await ws_tools.publish(session_id, 1)
    assert (await recv(ws))["seq"] == 1
    admin = Redis.from_url(redis_url)
    killed = await admin.client_kill_filter(_type="pubsub")
    assert killed == 1
    await ws_tools.publish(session_id, 1, start=1)  # likely lost live: the hub is away
    assert await recv(ws) == {"type": "resync", "session_ids": [session_id]}
    # The client resumes from what it holds, then live delivery goes on.
    epoch = sub["data"]["epoch"]
    reply = await ws_tools.call(
        ws, {"id": 2, "type": "subscribe", "session_id": session_id, "after_seq": 1,
             "epoch": epoch}
    )  # fmt: skip
    while reply.get("id") != 2:  # seq 2 may have arrived live before the resync
        assert reply["type"] == "event" and reply["seq"] == 2
        reply = await recv(ws)
    assert reply["data"] == {"last_seq": 2, "epoch": epoch, "recovered": True}
    assert (await recv(ws))["seq"] == 2
    await ws_tools.publish(session_id, 1, start=2)
    assert (await recv(ws))["seq"] == 3
    registry = ws_tools.client.app[keys.METRICS].registry
    assert registry.get_sample_value("chorus_event_hub_reconnects_total") == 1
    await admin.aclose()
    await ws.close()


async def test_revocation_missed_while_disconnected_is_caught_on_reconnect(
    ws_tools: Ws, redis_url: str
) -> None:
    user = await ws_tools.user()
    ws = await ws_tools.connect(user)
    app = ws_tools.client.app
    hub = app[keys.EVENT_HUB]
    admin = Redis.from_url(redis_url)
    await admin.client_kill_filter(_type="pubsub")
    await until(lambda: not hub.connected.is_set())
    # Deny the token without the pub/sub announcement (as if it was published meanwhile).
    claims = app[keys.TOKENS].decode(user.token)
    await admin.set(app[keys.REDIS_KEYS].jwt_denied(claims.jti), "1", ex=60)
    assert await recv_close(ws) == 1008
    await admin.aclose()


async def test_shutdown_closes_sockets_1001(ws_tools: Ws) -> None:
    user = await ws_tools.user()
    session_id = await ws_tools.session(user)
    ws = await ws_tools.connect(user)
    await ws_tools.call(ws, {"id": 1, "type": "subscribe", "session_id": session_id})
    closing = asyncio.create_task(ws_tools.client.server.close())
    assert await recv_close(ws) == 1001
    await closing


async def test_dead_peer_is_reaped_by_heartbeat(make_ws: MakeWs) -> None:
    tools = await make_ws(ws_heartbeat_s=0.2)
    ws = await tools.connect(await tools.user(), autoping=False)
    registry = tools.client.app[keys.METRICS].registry
    assert registry.get_sample_value("chorus_ws_connections") == 1
    msg = await ws.receive(timeout=5)
    assert msg.type is WSMsgType.PING  # never answered: the server gives up on us
    msg = await ws.receive(timeout=5)
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR)
    await until(lambda: registry.get_sample_value("chorus_ws_connections") == 0)


async def test_plain_get_without_upgrade_is_400(ws_tools: Ws) -> None:
    resp = await ws_tools.client.get("/api/v1/ws")
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "http_error"
