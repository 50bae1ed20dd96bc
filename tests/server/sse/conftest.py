"""Fixtures for SSE tests: open a session's event stream and read it with chorus_client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from chorus_client.sse import ServerSentEvent, SseParser, iter_sse

# The WebSocket tests' helpers (users, sessions, publishing) serve these tests too.
from tests.server.ws.conftest import make_ws, ws_tools

Client = TestClient[Any, web.Application]


class Stream:
    """One open SSE response, read event by event."""

    def __init__(self, resp: ClientResponse) -> None:
        self.resp = resp
        self.parser = SseParser()
        self._events: AsyncIterator[ServerSentEvent] = iter_sse(resp.content, self.parser)

    async def next(self, within_s: float = 5.0) -> ServerSentEvent:
        """The next dispatched event."""
        async with asyncio.timeout(within_s):
            return await anext(self._events)

    async def subscribed(self) -> dict[str, Any]:
        """Read the first frame, which must be ``event: subscribed``."""
        first = await self.next()
        assert first.event == "subscribed", first
        assert first.retry_ms == 1000
        info: dict[str, Any] = json.loads(first.data)
        return info

    async def events(self, n: int) -> list[dict[str, Any]]:
        """Read ``n`` session events, checking each SSE id is ``<epoch>:<seq>``."""
        out = []
        for _ in range(n):
            sse = await self.next()
            assert sse.event == "message", sse
            event = json.loads(sse.data)
            assert sse.id == f"{event['epoch']}:{event['seq']}"
            out.append(event)
        return out

    def drop(self) -> None:
        """Drop the connection abruptly (as a network failure would)."""
        self.resp.close()


async def open_stream(
    client: Client, session_id: str, headers: dict[str, str], **params: str
) -> Stream:
    """GET the session's events; assert a 200 event stream."""
    resp = await client.get(f"/api/v1/sessions/{session_id}/events", headers=headers, params=params)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"] == "text/event-stream"
    assert resp.headers["Cache-Control"] == "no-cache"
    return Stream(resp)


__all__ = ["Stream", "make_ws", "open_stream", "ws_tools"]
