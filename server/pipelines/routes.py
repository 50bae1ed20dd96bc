"""The pipelines resource: what a session can run."""

from __future__ import annotations

from aiohttp import web

from server import keys
from server.auth.identity import authenticate

routes = web.RouteTableDef()


@routes.get("/api/v1/pipelines")
async def list_pipelines(request: web.Request) -> web.Response:
    """Describe the pipelines with their stages and agents."""
    await authenticate(request)
    return web.json_response(request.app[keys.PIPELINES].describe())
