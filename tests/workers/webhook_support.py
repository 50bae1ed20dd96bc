"""A real local webhook receiver for the tests: records each POST, answers as scripted,
checks signatures with the snippet docs/webhooks.md gives readers."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


def doc_verify() -> Callable[[str, str, bytes], bool]:
    """The ``verify`` function of docs/webhooks.md, exactly as a reader copies it."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    source = next(block for block in blocks if "def verify(" in block)
    namespace: dict[str, Any] = {}
    exec(compile(source, str(DOC), "exec"), namespace)  # our own document
    verify: Callable[[str, str, bytes], bool] = namespace["verify"]
    return verify


@dataclass
class Received:
    """One POST as the receiver saw it."""

    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered


@dataclass
class Receiver:
    """Answers the scripted statuses in order (then 200) and records every request."""

    statuses: list[int] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        """Record the POST and answer the next scripted status."""
        status = self.statuses.pop(0) if self.statuses else 200
        body = await request.read()
        async with self.arrived:
            self.requests.append(Received(dict(request.headers), body, status))
            self.arrived.notify_all()
        return web.Response(status=status)

    async def wait_for(self, count: int, within_s: float = 20.0) -> list[Received]:
        """Wait until ``count`` requests arrived; return them."""
        async with asyncio.timeout(within_s), self.arrived:
            await self.arrived.wait_for(lambda: len(self.requests) >= count)
        return list(self.requests)


async def start_receiver() -> tuple[Receiver, TestServer]:
    """Serve a Receiver on a free local port (the caller closes the server)."""
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    receiver.url = str(server.make_url("/hook"))
    return receiver, server
