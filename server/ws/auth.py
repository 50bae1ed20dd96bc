"""The auth phase of a socket: the handshake's bearer or cookie, else a first ``auth`` frame."""

from __future__ import annotations

from typing import Literal

from aiohttp import WSCloseCode, WSMsgType, web
from redis.exceptions import RedisError

from server import keys
from server.api.decode import InputError, parse_json
from server.auth.identity import Identity, bearer_token, cookie_token, origin_allowed, resolve_token
from server.errors import Forbidden, Unauthorized
from server.ws.protocol import AUTH_FAILED

Via = Literal["bearer", "cookie"]


async def handshake_token(request: web.Request) -> tuple[str | None, Via]:
    """Return the token offered with the handshake; 403 for a cookie from a foreign origin."""
    token = bearer_token(request)
    if token is not None:
        return token, "bearer"
    token = await cookie_token(request)
    if token is not None and not origin_allowed(request, request.app[keys.SETTINGS]):
        # A browser sends the cookie whichever page opens the socket: refuse other origins.
        raise Forbidden("origin not allowed")
    return token, "cookie"


async def first_frame_token(ws: web.WebSocketResponse, timeout_s: float) -> tuple[str | None, str]:
    """Read ``{"type": "auth", "token": ...}`` within the timeout; return (token, reason)."""
    try:
        msg = await ws.receive(timeout=timeout_s)
    except TimeoutError:
        return None, "authentication timed out"
    if msg.type is not WSMsgType.TEXT:
        return None, "authentication required"
    try:
        frame = parse_json(msg.data)
    except InputError:
        return None, "authentication required"
    if not isinstance(frame, dict) or frame.get("type") != "auth":
        return None, "authentication required"
    token = frame.get("token")
    if not isinstance(token, str):
        return None, "authentication required"
    return token, "authentication failed"


async def authenticate_socket(
    request: web.Request, ws: web.WebSocketResponse, token: str | None, via: Via
) -> Identity | None:
    """Authenticate by the handshake's token, else by the first frame; close 4401 if neither."""
    reason = "authentication failed"
    if token is None:
        token, reason = await first_frame_token(ws, request.app[keys.SETTINGS].ws_auth_timeout_s)
        via = "bearer"
    if token is not None:
        try:
            user, claims = await resolve_token(request, token)
        except Unauthorized:
            pass
        except RedisError:  # the denylist cannot be read: fail closed, "try again later"
            await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"service unavailable")
            return None
        else:
            return Identity(user=user, claims=claims, via=via, token=token)
    await ws.close(code=AUTH_FAILED, message=reason.encode())
    return None
