"""A standalone worker's own small HTTP server: /metrics (Prometheus) and /healthz."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from workers.metrics import CurrentWorkerCollector

log = logging.getLogger("chorus.worker")
_REGISTRY = web.AppKey("registry", CollectorRegistry)


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[_REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def _app(current: Callable[[], Any]) -> web.Application:
    app = web.Application()
    app[_REGISTRY] = CollectorRegistry()
    app[_REGISTRY].register(CurrentWorkerCollector(current))
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    return app


@asynccontextmanager
async def serve_worker_metrics(
    host: str, port: int, current: Callable[[], Any]
) -> AsyncIterator[str]:
    """Serve the metrics of the arq worker ``current()`` returns; yield the base URL."""
    runner = web.AppRunner(_app(current), access_log=None)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            # Several workers on one host (a Procfile scaled up) cannot share the port:
            # a worker without a scrapable port beats a worker that does not start.
            await web.TCPSite(runner, host, 0).start()
            log.warning(
                "worker metrics port %d unavailable (%s): serving on %s instead; set "
                "WORKER_METRICS_PORT per worker", port, exc.strerror, _url(runner),
            )  # fmt: skip
        yield _url(runner)
    finally:
        await runner.cleanup()


def _url(runner: web.AppRunner) -> str:
    bound_host, bound_port = runner.addresses[0][:2]
    return f"http://{bound_host}:{bound_port}"
