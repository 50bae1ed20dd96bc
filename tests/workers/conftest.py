"""Run tests: the app, a demo model server, and an in-process worker or a worker's services
driven by the test."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from arq.connections import ArqRedis

from server import keys
from server.app import create_app
from server.config import Limits, Settings, secret
from tests.conftest import ClientFactory
from tests.support.api import Api, User
from workers.context import WorkerDeps, deps
from workers.demo_model import DemoConfig, DemoModelServer
from workers.inprocess import InProcessWorker
from workers.main import REGISTRY, SETTINGS, WATCHDOG, shutdown, startup
from workers.metrics import METRICS, WorkerMetrics

Client = TestClient[Any, web.Application]


@pytest.fixture
async def demo() -> AsyncIterator[DemoModelServer]:
    """A demo model answering fast (1 ms per token)."""
    async with DemoModelServer(DemoConfig(token_delay_ms=1.0, retry_after_s=0.05)) as server:
        yield server


@pytest.fixture
def run_settings(settings: Settings, demo: DemoModelServer) -> Settings:
    """Settings pointing the pipelines at the demo model, with short timeouts."""
    return settings.replace(
        demo_model_url=demo.base_url, stage_timeout_s=15.0, attempt_timeout_s=1.0,
        llm_backoff_base_s=0.02, llm_backoff_max_s=0.2,
        limits=Limits(api_per_user=100_000),
    )  # fmt: skip


@pytest.fixture
async def stack(aiohttp_client: ClientFactory, run_settings: Settings) -> AsyncIterator[Client]:
    """The app plus one in-process worker."""
    client = await aiohttp_client(create_app(run_settings))
    async with InProcessWorker(run_settings, client.app[keys.PIPELINES]):
        yield client


@pytest.fixture
async def app(aiohttp_client: ClientFactory, run_settings: Settings) -> Client:
    """The web app alone: no worker takes jobs unless the test runs one."""
    return await aiohttp_client(create_app(run_settings))


@pytest.fixture
async def worker(app: Client, run_settings: Settings) -> AsyncIterator[WorkerDeps]:
    """A worker's services, built by its real start-up; no job loop and no watchdog ticking
    behind the test's back (the test calls what the watchdog would)."""
    redis = ArqRedis.from_url(secret(run_settings.redis_url) or "")
    ctx: dict[str, Any] = {
        "redis": redis, SETTINGS: run_settings, REGISTRY: app.app[keys.PIPELINES],
        METRICS: WorkerMetrics(),
    }  # fmt: skip
    await startup(ctx)
    watchdog = ctx.pop(WATCHDOG)
    watchdog.cancel()
    await asyncio.gather(watchdog, return_exceptions=True)
    yield deps(ctx)
    await shutdown(ctx)
    await redis.aclose()


async def start_run(app: Client, user: User, content: str = "hi") -> dict[str, Any]:
    """Create a session of the default pipeline and post a message: the 202 body."""
    api = Api.of(app).as_user(user)
    return await api.send(await api.new_session(), content)


async def session_events(app: Client, session_id: str) -> list[dict[str, Any]]:
    """The session's events as published (its replay log)."""
    entries = await app.app[keys.REDIS].xrange(app.app[keys.REDIS_KEYS].session_stream(session_id))
    return [json.loads(fields[b"e"]) for _, fields in entries]


async def wait_run(client: Client, headers: dict[str, str], run_id: str,
                   statuses: tuple[str, ...] = ("completed", "failed", "cancelled"),
                   within_s: float = 30.0) -> dict[str, Any]:  # fmt: skip
    """Poll GET /runs/{id} until the run reaches one of ``statuses``."""
    async with asyncio.timeout(within_s):
        while True:
            run: dict[str, Any] = await (
                await client.get(f"/api/v1/runs/{run_id}", headers=headers)
            ).json()
            if run["status"] in statuses:
                return run
            await asyncio.sleep(0.05)
