"""Part 4: /metrics answers only whom the settings allow."""

from __future__ import annotations

import socket

import aiohttp

from tests.security.conftest import MakeSec

TOKEN = "metrics-token-0123456789"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_development_serves_metrics_to_anyone(make_sec: MakeSec) -> None:
    sec = await make_sec()
    resp = await sec.client.get("/metrics")
    assert resp.status == 200 and "chorus_http_requests_total" in await resp.text()
    await sec.still_serving()


async def test_production_without_a_token_or_port_refuses_metrics(make_sec: MakeSec) -> None:
    sec = await make_sec(env="production")
    resp = await sec.client.get("/metrics")
    assert (resp.status, (await resp.json())["error"]["code"]) == (403, "forbidden")
    await sec.still_serving()


async def test_a_token_is_required_when_set(make_sec: MakeSec) -> None:
    sec = await make_sec(metrics_token=TOKEN)
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"},
                    {"Authorization": f"Bearer {sec.bob.user.token}"}):  # fmt: skip
        resp = await sec.client.get("/metrics", headers=headers)
        assert (resp.status, (await resp.json())["error"]["code"]) == (401, "unauthorized")
    resp = await sec.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 200 and "chorus_http_requests_total" in await resp.text()
    await sec.still_serving()


async def test_a_metrics_port_moves_metrics_off_the_api_port(make_sec: MakeSec) -> None:
    port = _free_port()
    sec = await make_sec(metrics_port=port, metrics_token=TOKEN)
    resp = await sec.client.get("/metrics")
    assert (resp.status, (await resp.json())["error"]["code"]) == (404, "not_found")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/metrics") as refused:
            assert refused.status == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with http.get(f"http://127.0.0.1:{port}/metrics", headers=auth) as served:
            assert served.status == 200
            assert "chorus_http_requests_total" in await served.text()
        async with http.get(f"http://127.0.0.1:{port}/api/v1/auth/me", headers=auth) as other:
            assert other.status == 404  # the metrics port serves nothing else
    await sec.still_serving()
