"""A full stack for run tests: the app, a demo model server and an in-process worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.app import create_app
from server.config import Limits, Settings
from tests.conftest import ClientFactory
from workers.demo_model import DemoConfig, DemoModelServer
from workers.inprocess import InProcessWorker

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
