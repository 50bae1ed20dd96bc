"""The raw baseline of bench_fanout: a bare aiohttp WebSocket handler calling send_str in a
loop. ``python bench/_raw_ws_server.py PORT PAYLOAD_FILE``: every socket on /api/v1/ws
gets the payload (one text frame) over and over, from its first client frame on, until
it closes."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from aiohttp import WSMsgType, web


def make_app(payload: str) -> web.Application:
    """The bare application."""

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        msg = await ws.receive()
        if msg.type is WSMsgType.TEXT:
            try:
                while not ws.closed:
                    await ws.send_str(payload)
            except ConnectionError:
                pass
        return ws

    app = web.Application()
    app.router.add_get("/api/v1/ws", handler)
    app.router.add_get("/healthz", lambda _r: _ok())
    return app


async def _ok() -> web.Response:
    return web.Response(text="ok")


async def main(port: int, payload: str) -> None:
    """Serve until killed."""
    runner = web.AppRunner(make_app(payload), access_log=None, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("raw server ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), Path(sys.argv[2]).read_text()))
