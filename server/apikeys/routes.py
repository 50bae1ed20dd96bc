"""The API keys resource: create (the key is shown once), list, revoke."""

from __future__ import annotations

from aiohttp import web

from server import keys
from server.api.body import parse_body
from server.apikeys.schemas import CreateKeyBody
from server.apikeys.service import is_api_key_claims
from server.auth.identity import Identity, authenticate
from server.errors import Forbidden

routes = web.RouteTableDef()


async def _key_manager(request: web.Request) -> Identity:
    identity = await authenticate(request)
    if is_api_key_claims(identity.claims):
        # A leaked key must not be able to mint or revoke keys: sign in for that.
        raise Forbidden("API keys are managed with a login token or the browser session")
    return identity


@routes.post("/api/v1/api-keys")
async def create_key(request: web.Request) -> web.Response:
    """Create an API key; the response is the only time the key itself is shown."""
    identity = await _key_manager(request)
    body = await parse_body(request, CreateKeyBody)
    key, record = await request.app[keys.API_KEYS].create(identity.user, body.name.strip())
    return web.json_response({**record.public(), "key": key}, status=201)


@routes.get("/api/v1/api-keys")
async def list_keys(request: web.Request) -> web.Response:
    """List the caller's API keys (never the keys themselves)."""
    identity = await _key_manager(request)
    records = await request.app[keys.API_KEYS].list(identity.user)
    return web.json_response({"items": [r.public() for r in records]})


@routes.delete("/api/v1/api-keys/{key_id}")
async def revoke_key(request: web.Request) -> web.Response:
    """Revoke one of the caller's API keys; sockets it opened are closed."""
    identity = await _key_manager(request)
    await request.app[keys.API_KEYS].revoke(identity.user, request.match_info["key_id"])
    return web.Response(status=204)
