"""Operational endpoints: liveness, readiness, metrics, unknown routes."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.helpers import error_of

Client = TestClient[Any, web.Application]


async def test_healthz(client: Client) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json()) == {"status": "ok"}
    assert resp.headers["X-Request-ID"]


async def test_readyz_checks_redis_and_store(client: Client) -> None:
    resp = await client.get("/readyz")
    assert resp.status == 200
    assert (await resp.json())["checks"] == {"redis": "ok", "store": "ok"}


async def test_readyz_503_when_redis_is_gone(aiohttp_client: Any, settings: Any) -> None:
    from server.app import create_app
    from server.redis_proc import free_port

    broken = settings.replace(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    client = await aiohttp_client(create_app(broken))
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert (await resp.json())["checks"]["redis"] == "unavailable"


async def test_metrics_exposes_prometheus_text(client: Client) -> None:
    await client.get("/healthz")
    resp = await client.get("/metrics")
    assert resp.status == 200
    text = await resp.text()
    assert 'chorus_http_requests_total{method="GET",route="/healthz",status="200"}' in text


async def test_unknown_api_route_is_json_404(client: Client) -> None:
    assert await error_of(await client.get("/api/v1/nope")) == (404, "not_found")


async def test_wrong_method_is_json_405(client: Client) -> None:
    assert await error_of(await client.put("/api/v1/auth/me")) == (405, "method_not_allowed")


async def test_request_id_is_echoed(client: Client) -> None:
    resp = await client.get("/healthz", headers={"X-Request-ID": "abc123"})
    assert resp.headers["X-Request-ID"] == "abc123"
