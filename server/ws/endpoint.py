"""GET /api/v1/ws: the handshake, the auth phase, then the connection's loop."""

from __future__ import annotations

import logging

from aiohttp import WSCloseCode, web

from server import keys
from server.logs import user_id_var
from server.ws.auth import authenticate_socket, handshake_token
from server.ws.connection import Connection
from server.ws.handlers import COMMANDS
from server.ws.protocol import CLOSE_TIMEOUT_S, MAX_FRAME_BYTES

log = logging.getLogger("chorus.ws")


async def websocket(request: web.Request) -> web.StreamResponse:
    """Upgrade to a WebSocket, authenticate it, then serve commands and events until closed."""
    settings = request.app[keys.SETTINGS]
    token, via = await handshake_token(request)  # before the upgrade: 403 is still possible
    ws = web.WebSocketResponse(
        heartbeat=settings.ws_heartbeat_s or None,
        max_msg_size=MAX_FRAME_BYTES + 1,  # aiohttp refuses sizes >= the limit
        compress=False,
        timeout=CLOSE_TIMEOUT_S,
    )
    await ws.prepare(request)
    try:
        identity = await authenticate_socket(request, ws, token, via)
        if identity is not None:
            user_id_var.set(identity.user.user_id)
            await Connection(request.app, ws, identity, COMMANDS).serve()
    except Exception:
        log.exception("websocket failed")
        await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"internal error")
    return ws
