"""Fixtures for WebSocket tests: connect as a user, own sessions, read frames."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse, WSMsgType, web
from aiohttp.test_utils import TestClient

from server import keys
from server.config import Settings
from server.store.models import ChatSession
from tests.conftest import ClientFactory
from tests.support.api import User, make_user

WS_PATH = "/api/v1/ws"
Client = TestClient[Any, web.Application]


async def recv(ws: ClientWebSocketResponse, within_s: float = 5.0) -> dict[str, Any]:
    """Receive one JSON text frame."""
    msg = await ws.receive(timeout=within_s)
    assert msg.type is WSMsgType.TEXT, (msg.type, msg.data)
    frame: dict[str, Any] = json.loads(msg.data)
    return frame


async def until(predicate: Callable[[], object]) -> None:
    """Wait (at most 5 s) until ``predicate()`` holds, checking every 10 ms."""
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met within 5 s")


async def recv_close(ws: ClientWebSocketResponse, within_s: float = 5.0) -> int:
    """Skip any frames until the server's close frame; return its code."""
    while True:
        msg = await ws.receive(timeout=within_s)
        if msg.type is WSMsgType.CLOSE:
            assert isinstance(msg.data, int)
            return msg.data
        assert msg.type in (WSMsgType.TEXT, WSMsgType.BINARY), (msg.type, msg.data)


class Ws:
    """Helpers bound to one test client."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def user(self, name: str = "ann") -> User:
        """Register and log in a user."""
        return await make_user(self.client, name)

    async def session(self, user: User) -> str:
        """Create a session owned by ``user`` straight in the store; return its id."""
        session = ChatSession(user_id=user.user["user_id"], title="t")
        await self.client.app[keys.STORE].create_session(session)
        return session.session_id

    async def connect(self, user: User | None = None, **kwargs: Any) -> ClientWebSocketResponse:
        """Open a socket; with a user, authenticate by bearer header and read ``ready``."""
        headers = dict(kwargs.pop("headers", {}))
        if user is not None:
            headers.update(user.auth)
        ws = await self.client.ws_connect(WS_PATH, headers=headers, **kwargs)
        if user is not None:
            ready = await recv(ws)
            assert ready == {"type": "ready", "user": user.user}
        return ws

    async def call(self, ws: ClientWebSocketResponse, frame: dict[str, Any]) -> dict[str, Any]:
        """Send a command and return the next frame (its answer)."""
        await ws.send_json(frame)
        return await recv(ws)

    async def publish(self, session_id: str, n: int, start: int = 0) -> None:
        """Publish ``n`` stage.delta events whose text is their index."""
        bus = self.client.app[keys.EVENT_BUS]
        for i in range(start, start + n):
            await bus.publish(session_id, "stage.delta", {"stage": "draft", "text": str(i)})


@pytest.fixture
def ws_tools(client: Client) -> Ws:
    """WebSocket helpers on the default test client."""
    return Ws(client)


MakeWs = Callable[..., Awaitable[Ws]]


@pytest.fixture
def make_ws(aiohttp_client: ClientFactory, settings: Settings) -> MakeWs:
    """Build a test client with some settings changed; return helpers bound to it."""
    from server.app import create_app

    async def build(**changes: Any) -> Ws:
        return Ws(await aiohttp_client(create_app(settings.replace(**changes))))

    return build
