"""The webhook resource: set (the generated secret is shown once), show, remove, test, log."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from arq.connections import ArqRedis

from server import keys
from server.api.body import parse_body, parse_query
from server.auth.identity import authenticate
from server.notify.schemas import DeliveriesQuery, PutWebhookBody
from server.notify.webhooks import WebhookService

routes = web.RouteTableDef()
WEBHOOK = "/api/v1/webhook"


@routes.put(WEBHOOK)
async def put_webhook(request: web.Request) -> web.Response:
    """Set the caller's webhook; a generated secret is in this answer only."""
    identity = await authenticate(request)
    body = await parse_body(request, PutWebhookBody)
    webhook, shown = await request.app[keys.WEBHOOKS].put(identity.user, body.url, body.secret)
    answer = webhook.public()
    if shown is not None:
        answer["secret"] = shown
    return web.json_response(answer)


@routes.get(WEBHOOK)
async def get_webhook(request: web.Request) -> web.Response:
    """Show the caller's webhook (never its secret)."""
    identity = await authenticate(request)
    webhook = await request.app[keys.WEBHOOKS].get(identity.user)
    return web.json_response(webhook.public())


@routes.delete(WEBHOOK)
async def delete_webhook(request: web.Request) -> web.Response:
    """Remove the caller's webhook."""
    identity = await authenticate(request)
    await request.app[keys.WEBHOOKS].delete(identity.user)
    return web.Response(status=204)


@routes.post(f"{WEBHOOK}/test")
async def test_webhook(request: web.Request) -> web.Response:
    """Queue a ``webhook.test`` delivery to the caller's webhook."""
    identity = await authenticate(request)
    delivery = await request.app[keys.WEBHOOKS].test(identity.user)
    return web.json_response({"delivery": delivery.model_dump(mode="json")}, status=202)


@routes.get(f"{WEBHOOK}/deliveries")
async def list_deliveries(request: web.Request) -> web.Response:
    """The caller's delivery log, newest first."""
    identity = await authenticate(request)
    query = parse_query(request.query, DeliveriesQuery)
    items = await request.app[keys.WEBHOOKS].deliveries(identity.user, query.limit)
    return web.json_response({"items": [d.model_dump(mode="json") for d in items]})


async def webhooks_ctx(app: web.Application) -> AsyncIterator[None]:
    """Build the WebhookService once Redis and the store are open."""
    redis = app[keys.REDIS]
    assert isinstance(redis, ArqRedis)
    app[keys.WEBHOOKS] = WebhookService(app[keys.STORE], redis, app[keys.REDIS_KEYS])
    yield
