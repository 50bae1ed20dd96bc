"""Operational endpoints: liveness, readiness, metrics, unknown routes."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from tests.support.api import error_of

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


async def test_metric_labels_stay_bounded_whatever_clients_send(client: Client) -> None:
    for n, method in enumerate(("PROPFIND", "PURGE", "MKCOL")):  # WebDAV & co. parse fine
        await client.request(method, "/healthz")
        await client.get(f"/api/v1/no-such-thing-{n}")
    await client.get("/healthz")
    registry = client.app[keys.METRICS].registry
    labels = [s.labels for f in registry.collect() for s in f.samples
              if s.name == "chorus_http_requests_total"]  # fmt: skip
    assert {lab["method"] for lab in labels} == {"GET", "OTHER"}
    assert {lab["route"] for lab in labels} == {"/healthz", "unmatched"}
    other = {"method": "OTHER", "route": "unmatched", "status": "405"}
    assert registry.get_sample_value("chorus_http_requests_total", other) == 3


async def test_unknown_api_route_is_json_404(client: Client) -> None:
    assert await error_of(await client.get("/api/v1/nope")) == (404, "not_found")


async def test_wrong_method_is_json_405(client: Client) -> None:
    assert await error_of(await client.put("/api/v1/auth/me")) == (405, "method_not_allowed")


async def test_request_id_is_echoed(client: Client) -> None:
    resp = await client.get("/healthz", headers={"X-Request-ID": "abc123"})
    assert resp.headers["X-Request-ID"] == "abc123"
