"""GET /metrics: on a port of its own (METRICS_PORT), or behind a bearer token (METRICS_TOKEN).

Without either, development serves it to anyone (a laptop), production to no one (403):
the counters name routes and volumes an outsider has no business reading.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from server import keys
from server.auth.identity import bearer_token
from server.config import secret
from server.errors import Forbidden, NotFound, Unauthorized
from server.metrics import Metrics

log = logging.getLogger("chorus.metrics")


def _exposition(metrics: Metrics) -> web.Response:
    body = generate_latest(metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def check_token(request: web.Request, token: str) -> None:
    """Raise 401 unless the request carries ``Authorization: Bearer <token>``."""
    offered = bearer_token(request) or ""
    if not hmac.compare_digest(offered.encode(), token.encode()):
        raise Unauthorized("metrics need the METRICS_TOKEN bearer token")


async def public_metrics(request: web.Request) -> web.Response:
    """Serve /metrics on the API port, as the settings allow."""
    settings = request.app[keys.SETTINGS]
    if settings.metrics_port is not None:
        raise NotFound("metrics are served on their own port")
    if settings.metrics_token is not None:
        check_token(request, settings.metrics_token.get_secret_value())
    elif settings.production:
        raise Forbidden("set METRICS_TOKEN or METRICS_PORT to expose metrics")
    return _exposition(request.app[keys.METRICS])


def metrics_app(metrics: Metrics, token: str | None) -> web.Application:
    """The small application the metrics port serves: GET /metrics only."""

    async def serve(request: web.Request) -> web.Response:
        if token is not None:
            try:
                check_token(request, token)
            except Unauthorized:
                raise web.HTTPUnauthorized() from None
        return _exposition(metrics)

    app = web.Application()
    app.router.add_get("/metrics", serve)
    return app


async def metrics_port_ctx(app: web.Application) -> AsyncIterator[None]:
    """Serve /metrics on METRICS_HOST:METRICS_PORT while the app runs (if a port is set)."""
    settings = app[keys.SETTINGS]
    if settings.metrics_port is None:
        yield
        return
    metrics = metrics_app(app[keys.METRICS], secret(settings.metrics_token))
    runner = web.AppRunner(metrics, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.metrics_host, settings.metrics_port).start()
        log.info("metrics served", extra={"port": settings.metrics_port})
        yield
    finally:
        await runner.cleanup()


def setup_metrics(app: web.Application) -> None:
    """Add GET /metrics and, with METRICS_PORT, the separate metrics listener."""
    app.router.add_get("/metrics", public_metrics)
    app.cleanup_ctx.append(metrics_port_ctx)
