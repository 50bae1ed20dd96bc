"""A standalone worker's own small HTTP server: /metrics (Prometheus) and /healthz."""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType
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


class WorkerMetricsServer:
    """Serve the metrics of the arq worker ``current()`` returns, on host:port."""

    def __init__(self, host: str, port: int, current: Callable[[], Any]) -> None:
        self._host = host
        self._port = port
        self.registry = CollectorRegistry()
        self.registry.register(CurrentWorkerCollector(current))
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The base URL it listens on (the port actually bound)."""
        assert self._runner is not None, "not started"
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}"

    async def __aenter__(self) -> WorkerMetricsServer:
        app = web.Application()
        app[_REGISTRY] = self.registry
        app.router.add_get("/metrics", _metrics)
        app.router.add_get("/healthz", _healthz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self._host, self._port).start()
        except OSError as exc:
            # Several workers on one host (a Procfile scaled up) cannot share the port:
            # a worker without a scrapable port beats a worker that does not start.
            await web.TCPSite(self._runner, self._host, 0).start()
            log.warning(
                "worker metrics port %d unavailable (%s): serving on %s instead; set "
                "WORKER_METRICS_PORT per worker", self._port, exc.strerror, self.url,
            )  # fmt: skip
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
