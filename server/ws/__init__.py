"""The WebSocket API: transport (http.py), auth phase, connection, commands, EventHub wiring."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from server import keys
from server.events.hub import EventHub
from server.events.presence import Presence
from server.redis_client import redis_client
from server.ws.connection import Connection
from server.ws.http import websocket
from server.ws.limits import SocketLimits
from server.ws.protocol import CLOSE_TIMEOUT_S, GOING_AWAY

log = logging.getLogger("chorus.ws")
_HUB_CONNECT_WAIT_S = 5.0


def setup_ws(app: web.Application) -> None:
    """Add GET /api/v1/ws, the EventHub's cleanup context and closing sockets at shutdown."""
    settings = app[keys.SETTINGS]
    app[keys.WS_LIMITS] = SocketLimits(settings.ws_max_pending, settings.ws_max_per_user)
    app.router.add_get("/api/v1/ws", websocket)
    app.cleanup_ctx.append(hub_ctx)
    app.on_shutdown.append(close_sockets)


async def hub_ctx(app: web.Application) -> AsyncIterator[None]:
    """Run this process's EventHub (one Redis pub/sub connection) while the app runs."""
    settings = app[keys.SETTINGS]
    redis = redis_client(settings, pubsub=True)  # its own: no socket timeout
    presence = Presence(app[keys.REDIS], app[keys.REDIS_KEYS], settings.presence_ttl_s)
    hub = EventHub(redis, app[keys.REDIS_KEYS], app[keys.METRICS], presence=presence)
    app[keys.EVENT_HUB] = hub
    presence.start()
    await hub.start()
    try:
        # Wait for the revocations channel, so a socket never misses its token's logout.
        async with asyncio.timeout(_HUB_CONNECT_WAIT_S):
            await hub.connected.wait()
    except TimeoutError:
        log.warning("event hub not connected to Redis yet; it keeps retrying")
    yield
    await hub.close()
    await presence.close()
    await redis.aclose()


async def close_sockets(app: web.Application) -> None:
    """Close every socket with 1001 and wait (bounded) for them to finish."""
    hub = app.get(keys.EVENT_HUB)
    if hub is None:
        return
    connections = [sink for sink in hub.sinks if isinstance(sink, Connection)]
    for conn in connections:
        conn.close(GOING_AWAY, "server shutting down")
    if not connections:
        return
    waiters = [asyncio.create_task(conn.wait_closed()) for conn in connections]
    _done, pending = await asyncio.wait(waiters, timeout=CLOSE_TIMEOUT_S + 1)
    for waiter in pending:
        waiter.cancel()
