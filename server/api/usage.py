"""The usage resource: the caller's tokens and cost, and what is left of today's budget."""

from __future__ import annotations

from aiohttp import web

from server import keys
from server.auth.identity import authenticate

routes = web.RouteTableDef()


@routes.get("/api/v1/usage")
async def usage(request: web.Request) -> web.Response:
    """Return the caller's tokens and cost, totals and per day, and today's budget."""
    identity = await authenticate(request)
    summary = await request.app[keys.STORE].usage_summary(identity.user.user_id)
    budget = await request.app[keys.BUDGETS].status(identity.user)
    return web.json_response({**summary.model_dump(mode="json"), "budget": budget})
