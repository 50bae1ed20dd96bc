"""GET /api/v1/ws: the handshake, the auth phase, then the connection's loop."""

from __future__ import annotations

import logging

from aiohttp import WSCloseCode, web

from server import keys
from server.auth.identity import Identity
from server.errors import Unavailable
from server.logs import user_id_var
from server.ws.auth import authenticate_socket, handshake_token
from server.ws.connection import Connection
from server.ws.handlers import COMMANDS
from server.ws.limits import SocketLimits
from server.ws.protocol import CLOSE_TIMEOUT_S, MAX_FRAME_BYTES, POLICY_VIOLATION

log = logging.getLogger("chorus.ws")


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
        await Connection(request.app, ws, identity, COMMANDS).serve()
    finally:
        limits.remove_user_socket(user_id)
