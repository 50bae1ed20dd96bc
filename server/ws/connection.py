"""Connection: the protocol side of one authenticated socket — dispatch and subscriptions.

The transport (the bounded outbox, the one writer task, the close handshake) is in
``http.py``; a connection only queues frames on it and asks it to close.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from aiohttp import WSMessage, WSMsgType, web
from pydantic import ValidationError
from redis.exceptions import RedisError

from server import keys
from server.api.decode import InputError, parse_json
from server.auth.identity import Identity
from server.auth.tokens import TokenError
from server.errors import ApiError, InvalidRequest, describe_validation
from server.ws.decorators import Command
from server.ws.limits import CommandRate
from server.ws.outbox import Item, Replay
from server.ws.protocol import (
    ACCOUNT_DISABLED,
    POLICY_VIOLATION,
    error_frame,
    ready_frame,
    result_frame,
    resync_frame,
)

log = logging.getLogger("chorus.ws")

INVALID_MESSAGE = "invalid_message"


class Transport(Protocol):
    """The socket's outgoing side, as the protocol sees it; neither method blocks."""

    def push(self, item: Item) -> None: ...
    def close(self, code: int, reason: str) -> None: ...
    async def wait_closed(self) -> None: ...


class BadFrame(Exception):
    """A frame that cannot be dispatched; answered with an error, the socket stays open."""

    def __init__(self, cmd_id: int | None, code: str, message: str) -> None:
        super().__init__(message)
        self.cmd_id = cmd_id
        self.code = code
        self.message = message


def error_for(exc: Exception) -> tuple[str, str] | None:
    """Map a handler's exception to (code, message); None for an unexpected one."""
    if isinstance(exc, ValidationError):
        return INVALID_MESSAGE, describe_validation(exc)
    if isinstance(exc, InvalidRequest):
        return INVALID_MESSAGE, exc.message
    if isinstance(exc, ApiError):
        # NotFound → not_found, SessionBusy → session_busy, RateLimited → rate_limited...
        return exc.code, exc.message
    if isinstance(exc, RedisError):  # a Redis outage: the client may try again, never 1011
        return "unavailable", "The service is briefly unavailable; try again."
    return None


class Connection:
    """Serve one socket's commands and events; every frame out goes through the transport."""

    def __init__(
        self,
        app: web.Application,
        transport: Transport,
        identity: Identity,
        commands: Mapping[str, Command[Any]],
    ) -> None:
        self.app = app
        self.user = identity.user
        self._identity = identity
        self._transport = transport
        self._commands = commands
        settings = app[keys.SETTINGS]
        self._rate = CommandRate(settings.ws_rate_per_s, settings.ws_rate_burst)
        self._subscriptions: dict[str, Callable[[], None]] = {}
        self._last_id: int | None = None
        self._expiry: asyncio.TimerHandle | None = None

    # what producers (handlers, the hub) call; none of these awaits the socket

    def push(self, frame: Item) -> None:
        """Queue a frame (or a batch) for the writer."""
        self._transport.push(frame)

    def push_replay(self, session_id: str, frames: list[bytes]) -> None:
        """Queue a subscription's replay, superseding one of the same session still unsent."""
        self.push(Replay(session_id, frames))

    def send_result(self, cmd_id: int, data: dict[str, Any]) -> None:
        """Answer a command successfully."""
        self.push(result_frame(cmd_id, data))

    def send_error(
        self, cmd_id: int | None, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        """Answer a command (or an unreadable frame) with an error."""
        self.push(error_frame(cmd_id, code, message, details))

    def resync(self, session_ids: list[str]) -> None:
        """Ask the client to re-subscribe sessions whose live feed may have had a gap."""
        self.push(resync_frame(session_ids))

    def revoked(self) -> None:
        """Close the socket: its token was revoked."""
        self.close(POLICY_VIOLATION, "token revoked")

    def disabled(self) -> None:
        """Close the socket: an admin disabled its user."""
        self.close(ACCOUNT_DISABLED, "account disabled")

    def close(self, code: int, reason: str) -> None:
        """Close the socket with ``code`` (from any task or callback; idempotent)."""
        self._transport.close(code, reason)

    async def wait_closed(self) -> None:
        """Wait until the connection has been served to its end and its close sent."""
        await self._transport.wait_closed()

    # subscriptions: each is stored as the callable that ends it

    def add_subscription(self, session_id: str, unsubscribe: Callable[[], None]) -> None:
        """Keep a subscription's unsubscribe callable (replacing an older one)."""
        self.remove_subscription(session_id)
        self._subscriptions[session_id] = unsubscribe

    def remove_subscription(self, session_id: str) -> bool:
        """End the subscription to a session; False if there was none."""
        unsubscribe = self._subscriptions.pop(session_id, None)
        if unsubscribe is None:
            return False
        unsubscribe()
        return True

    # lifecycle

    async def start(self) -> None:
        """Check the token once more, arm its expiry and greet the client with ``ready``."""
        # Attached first, then checked: a revocation (or a disable) is either seen here or by
        # the hub.
        try:
            await self.app[keys.TOKENS].verify(self._identity.token)
        except TokenError:
            self.close(POLICY_VIOLATION, "token revoked")
            return
        if await self.app[keys.REDIS].exists(
            self.app[keys.REDIS_KEYS].user_disabled(self.user.user_id)
        ):
            self.disabled()
            return
        delay = max(0.0, self._identity.claims.seconds_left())
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(delay, self.close, POLICY_VIOLATION, "token expired")
        self.push(ready_frame(self.user.public()))

    def release(self) -> None:
        """Disarm the expiry and end every subscription (the socket is done)."""
        if self._expiry is not None:
            self._expiry.cancel()
        for session_id in list(self._subscriptions):
            self.remove_subscription(session_id)

    # reading and dispatch

    async def receive(self, msg: WSMessage) -> bool:
        """Handle one message read from the socket; False once the socket is done."""
        if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY) and not self._rate.allow():
            self.close(POLICY_VIOLATION, "command rate limit exceeded")
            return False
        if msg.type is WSMsgType.TEXT:
            await self._on_text(msg.data)
        elif msg.type is WSMsgType.BINARY:
            self.send_error(None, INVALID_MESSAGE, "frames must be JSON text, not binary")
        else:
            return False  # CLOSE, CLOSING, CLOSED or ERROR (aiohttp sent the close code)
        return True

    async def _on_text(self, text: str) -> None:
        try:
            cmd_id, command, frame = self._envelope(text)
        except BadFrame as bad:
            self.send_error(bad.cmd_id, bad.code, bad.message)
            return
        try:
            payload = command.schema.model_validate(frame)
            await command.handler(self, cmd_id, payload)
        except Exception as exc:
            mapped = error_for(exc)
            if mapped is None:
                log.error("websocket command %s failed", command.name, exc_info=exc)
                mapped = ("internal_error", "internal server error")
            self.send_error(cmd_id, *mapped, exc.details if isinstance(exc, ApiError) else None)

    def _envelope(self, text: str) -> tuple[int, Command[Any], dict[str, Any]]:
        try:
            frame = parse_json(text)
        except InputError as exc:
            raise BadFrame(None, INVALID_MESSAGE, f"frame {exc}") from None
        if not isinstance(frame, dict):
            raise BadFrame(None, INVALID_MESSAGE, "frame must be a JSON object")
        cmd_id = frame.get("id")
        if type(cmd_id) is not int:
            raise BadFrame(None, INVALID_MESSAGE, "id: an integer is required")
        if self._last_id is not None and cmd_id <= self._last_id:
            raise BadFrame(cmd_id, INVALID_MESSAGE, "id: must be greater than the last one")
        self._last_id = cmd_id
        kind = frame.get("type")
        command = self._commands.get(kind) if isinstance(kind, str) else None
        if command is None:
            raise BadFrame(cmd_id, "unknown_command", "unknown command type")
        return cmd_id, command, frame
