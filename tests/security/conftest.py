"""The security suite's tools: raw HTTP bytes, a victim whose data must survive, a check.

Each test module attacks as an outsider (or as a second user, ``mallory``) and ends
with ``still_serving``: the server answers the victim (``bob``) and bob's stored data
is exactly what it was before the attack.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from server import keys
from server.app import create_app, runner_options
from server.config import Settings
from server.store.models import ChatSession, Message
from tests.conftest import ClientFactory
from tests.support.api import User, make_user

Client = TestClient[Any, web.Application]
_READ_LIMIT_S = 10.0  # an upper bound on waiting for an answer, never a race's referee
UPGRADE = [
    (b"Upgrade", b"websocket"),
    (b"Connection", b"Upgrade"),
    (b"Sec-WebSocket-Version", b"13"),
    (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
]


@dataclass
class RawResponse:
    """An HTTP answer read off the socket: status, headers (lower-cased names), body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)

    def error_code(self) -> str:
        """The ``error.code`` of an error envelope."""
        code: str = self.json()["error"]["code"]
        return code


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


async def raw_request(client: Client, request: bytes, *, head_only: bool = False) -> RawResponse:
    """Send raw request bytes and read one answer (its head only, for an upgrade)."""
    server = client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(request)
        async with asyncio.timeout(_READ_LIMIT_S):
            status, headers = _parse_head((await reader.readuntil(b"\r\n\r\n"))[:-4])
            body = b""
            if not head_only and "content-length" in headers:
                body = await reader.readexactly(int(headers["content-length"]))
            elif not head_only:
                body = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    return RawResponse(status, headers, body)


def http_request(
    method: str,
    path: str | bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
    host: bytes = b"chorus.test",
) -> bytes:
    """Build the bytes of one HTTP/1.1 request, any header bytes allowed."""
    target = path if isinstance(path, bytes) else path.encode()
    lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: " + host]
    lines += [name + b": " + value for name, value in headers or []]
    lines.append(b"Content-Length: " + str(len(body)).encode())
    if not any(name.lower() == b"connection" for name, _ in headers or []):
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@dataclass
class Victim:
    """Bob, his session and message, and what the API showed of them before the attack."""

    user: User
    session_id: str
    before: dict[str, Any] = field(default_factory=dict)


async def _bob_sees(client: Client, bob: Victim) -> dict[str, Any]:
    sessions = await client.get("/api/v1/sessions", headers=bob.user.auth)
    messages = await client.get(
        f"/api/v1/sessions/{bob.session_id}/messages", headers=bob.user.auth
    )
    assert sessions.status == 200 and messages.status == 200
    return {"sessions": await sessions.json(), "messages": await messages.json()}


class Sec:
    """One app under attack, with its victim."""

    def __init__(self, client: Client, bob: Victim) -> None:
        self.client = client
        self.bob = bob

    @property
    def app(self) -> web.Application:
        """The application under attack."""
        return self.client.app

    async def raw(self, request: bytes, *, head_only: bool = False) -> RawResponse:
        """Send raw bytes to the server."""
        return await raw_request(self.client, request, head_only=head_only)

    async def user(self, name: str = "mallory") -> User:
        """Register and log in another user (the attacker, or a bystander); bearer only."""
        user = await make_user(self.client, name)
        self.client.session.cookie_jar.clear()
        return user

    async def still_serving(self) -> None:
        """The server answers bob, and bob's data is what it was before the attack."""
        me = await self.client.get("/api/v1/auth/me", headers=self.bob.user.auth)
        assert me.status == 200, await me.text()
        assert await _bob_sees(self.client, self.bob) == self.bob.before


async def build_sec(client: Client) -> Sec:
    """Register bob with one session holding one message; remember what he sees."""
    user = await make_user(client, "bob")
    client.session.cookie_jar.clear()  # bob uses his bearer token; attackers bring their own
    session = ChatSession(user_id=user.user["user_id"], title="bob's")
    store = client.app[keys.STORE]
    await store.create_session(session)
    await store.insert_message(
        Message(session_id=session.session_id, user_id=session.user_id, role="user",
                content="bob's secret")
    )  # fmt: skip
    bob = Victim(user, session.session_id)
    bob.before = await _bob_sees(client, bob)
    return Sec(client, bob)


MakeSec = Callable[..., Awaitable[Sec]]


@pytest.fixture
def make_sec(aiohttp_client: ClientFactory, settings: Settings) -> MakeSec:
    """Build an app with some settings changed (served as ``python -m chorus`` serves it)."""

    async def build(**changes: Any) -> Sec:
        changed = settings.replace(**changes)
        server = TestServer(create_app(changed))
        # The runner options only reach the runner through start_server.
        await server.start_server(**runner_options(changed))
        return await build_sec(await aiohttp_client(server))

    return build


@pytest.fixture
async def sec(make_sec: MakeSec) -> Sec:
    """The app with the test settings, and bob."""
    return await make_sec()
