"""The image's HEALTHCHECK command: /healthz of the web process or the worker."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from server.config import Settings
from server.healthcheck import main, ports_for, probe
from server.redis_proc import free_port


async def test_probe_answers_for_a_live_healthz_only(
    client: TestClient[Any, web.Application],
) -> None:
    port = client.port
    assert port is not None
    assert await asyncio.to_thread(probe, port) is True
    assert await asyncio.to_thread(probe, free_port()) is False
    assert probe(0) is False


def test_each_role_probes_its_own_port() -> None:
    settings = Settings(port=8001, worker_metrics_port=9002)
    assert ports_for("web", settings) == [8001]
    assert ports_for("worker", settings) == [9002]
    assert ports_for("any", settings) == [8001, 9002]


def test_a_wrong_role_is_a_usage_error() -> None:
    assert main(["database"]) == 2
