"""/healthz (process alive), /readyz (Redis and store reachable); /metrics is in metrics.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from aiohttp import web

from server import keys

log = logging.getLogger("chorus.health")
routes = web.RouteTableDef()
_READY_TIMEOUT_S = 2.0


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Answer 200 while the process is alive."""
    return web.json_response({"status": "ok"})


async def _check(name: str, probe: Awaitable[object]) -> tuple[str, str]:
    try:
        async with asyncio.timeout(_READY_TIMEOUT_S):
            await probe
    except Exception as exc:
        log.warning("readiness check %s failed: %s", name, exc)
        return name, "unavailable"
    return name, "ok"


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Answer 200 when Redis and the store both answer, else 503 naming the failing one."""
    checks = dict(
        await asyncio.gather(
            _check("redis", request.app[keys.REDIS].ping()),
            _check("store", request.app[keys.STORE].ping()),
        )
    )
    ready = all(v == "ok" for v in checks.values())
    return web.json_response(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )
