"""The transport of /api/v1/ws: the handshake and auth phase, then one socket's queue, writer
and close; the protocol side (dispatch, subscriptions) is ``Connection``."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSCloseCode, WSMsgType, web

from server import keys
from server.auth.identity import Identity
from server.errors import Unavailable
from server.logs import user_id_var
from server.metrics import Metrics
from server.ws.auth import authenticate_socket, handshake_token
from server.ws.commands import COMMANDS
from server.ws.connection import Connection
from server.ws.limits import SocketLimits
from server.ws.outbox import Item, Outbox
from server.ws.protocol import (
    CLOSE_TIMEOUT_S,
    MAX_FRAME_BYTES,
    POLICY_VIOLATION,
    TRY_AGAIN_LATER,
)

log = logging.getLogger("chorus.ws")


class SocketTransport:
    """One socket's outgoing side: a bounded outbox, one writer task, the close handshake.

    ``push`` and ``close`` never await the socket; a client lagging past the outbox's
    bounds is closed with 1013.
    """

    def __init__(self, ws: web.WebSocketResponse, outbox: Outbox, metrics: Metrics) -> None:
        self._ws = ws
        self._outbox = outbox
        self._metrics = metrics
        self._closing = False
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self.done = asyncio.Event()  # set once the socket has been served to its end

    def push(self, item: Item) -> None:
        """Queue a frame (or a batch) for the writer; close 1013 if the client lags too far."""
        if self._closing:
            return
        if not self._outbox.put(item):
            self._metrics.ws_slow_closed.inc()
            queued = {"queued": len(self._outbox), "queued_bytes": self._outbox.queued_bytes}
            log.info("closing a slow websocket consumer", extra=queued)
            self.close(TRY_AGAIN_LATER, "slow consumer")

    def close(self, code: int, reason: str) -> None:
        """Close the socket with ``code`` (from any task or callback; idempotent)."""
        if self._closing:
            return
        self._closing = True
        self._outbox.clear()
        self._closer = asyncio.create_task(self._close(code, reason), name="ws-close")

    async def wait_closed(self) -> None:
        """Wait until the socket has been served to its end and its close sent."""
        await self.done.wait()
        if self._closer is not None:
            await asyncio.wait([self._closer])

    def start(self) -> None:
        """Start the writer task."""
        self._writer = asyncio.create_task(self._write_loop(), name="ws-writer")

    def release(self) -> None:
        """Stop queueing; stop the writer unless a close is under way (it stops it itself)."""
        self._closing = True
        if self._writer is not None and self._closer is None:
            self._writer.cancel()

    async def finished(self) -> None:
        """Wait for the writer and the close handshake, whichever ran."""
        await asyncio.wait([t for t in (self._writer, self._closer) if t is not None])

    async def _close(self, code: int, reason: str) -> None:
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.wait([self._writer])
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._ws.close(code=code, message=reason.encode())
        except TimeoutError:
            log.info("websocket close handshake timed out (code %d)", code)

    async def _write_loop(self) -> None:
        outbox, ws, text = self._outbox, self._ws, WSMsgType.TEXT
        try:
            while True:
                item = await outbox.get()
                if isinstance(item, bytes):
                    await ws.send_frame(item, text)
                else:
                    for frame in item:
                        await ws.send_frame(frame, text)
        except ConnectionError:
            return  # the peer is gone; the read loop sees it too
        except Exception:
            log.exception("websocket writer failed")
            self.close(WSCloseCode.INTERNAL_ERROR, "internal error")


async def websocket(request: web.Request) -> web.StreamResponse:
    """Upgrade to a WebSocket, authenticate it, then serve commands and events until closed."""
    settings = request.app[keys.SETTINGS]
    token, via = await handshake_token(request)  # before the upgrade: 403 is still possible
    limits = request.app[keys.WS_LIMITS]
    if not limits.enter_pending():
        raise Unavailable("too many sockets are authenticating", headers={"Retry-After": "1"})
    ws = web.WebSocketResponse(
        heartbeat=settings.ws_heartbeat_s or None,
        max_msg_size=MAX_FRAME_BYTES + 1,  # aiohttp refuses sizes >= the limit
        compress=False,
        timeout=CLOSE_TIMEOUT_S,
    )
    try:
        await ws.prepare(request)
        identity = await authenticate_socket(request, ws, token, via)
    finally:
        limits.leave_pending()
    try:
        if identity is not None:
            await _serve(request, ws, identity, limits)
    except Exception:
        log.exception("websocket failed")
        await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"internal error")
    return ws


async def _serve(
    request: web.Request, ws: web.WebSocketResponse, identity: Identity, limits: SocketLimits
) -> None:
    """Serve an authenticated socket, if its user holds fewer than WS_MAX_PER_USER (else 1008)."""
    user_id = identity.user.user_id
    user_id_var.set(user_id)
    if not limits.add_user_socket(user_id):
        await ws.close(code=POLICY_VIOLATION, message=b"too many sockets for this user")
        return
    try:
        await serve_connection(request.app, ws, identity)
    finally:
        limits.remove_user_socket(user_id)


async def serve_connection(
    app: web.Application, ws: web.WebSocketResponse, identity: Identity
) -> None:
    """Run the socket until either side closes it, then release everything it held."""
    settings, metrics = app[keys.SETTINGS], app[keys.METRICS]
    transport = SocketTransport(
        ws, Outbox(settings.ws_queue_size, settings.ws_queue_bytes), metrics
    )
    conn = Connection(app, transport, identity, COMMANDS)
    detach = app[keys.EVENT_HUB].attach(conn, identity.claims.jti, identity.user.user_id)
    metrics.ws_connections.inc()
    transport.start()
    try:
        await conn.start()
        while await conn.receive(await ws.receive()):
            pass
    finally:
        # Synchronous first: the handler may be cancelled at any await from here on.
        detach()
        conn.release()
        transport.release()
        metrics.ws_connections.dec()
        transport.done.set()
        await transport.finished()
